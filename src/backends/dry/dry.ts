// The dry backend's live half: nothing runs. A started member is a marker file, Lazarus's own
// (<state>/dry/<cell>/<spawn id>), written atomically; stopping it deletes the marker. So plan,
// apply, close, resurrect and scrub go through their whole bookkeeping (records, ledger, journal,
// checkpoints of the cell's tree) with no process, engine or host behind the members.
import { mkdir, readdir, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import path from "node:path";
import type { CellRecord, MemberRecord } from "../../cells/record.js";
import { restoreCheckpoint } from "../../checkpoints/checkpoint.js";
import { LazarusError } from "../../util/errors.js";
import { writeTextAtomic } from "../../util/fsx.js";
import type { Backend, MemberRef, SessionSpawn, StartSpec, Started } from "../backend.js";

// No process: the handle names the marker, and start time 0 says the start is known (the member
// is "running" at once, never "starting" and looked for again).
const started = (spawnId: string): Started => ({ pid: 0, startTime: 0, handle: `dry/${spawnId}` });

export class DryBackend implements Backend {
  readonly name = "dry";

  constructor(private readonly stateRoot: string) {}

  private cellDir(cell: string): string {
    return path.join(this.stateRoot, "dry", cell);
  }

  private marker(cell: string, spawnId: string): string {
    return path.join(this.cellDir(cell), spawnId);
  }

  async prepareCell(): Promise<void> {
    // nothing to hand over: no member ever runs
  }

  async start(rec: CellRecord, spec: StartSpec): Promise<Started> {
    await mkdir(this.cellDir(rec.name), { recursive: true, mode: 0o700 });
    await writeTextAtomic(this.marker(rec.name, spec.spawnId), `${spec.identity}\n`, 0o600);
    return started(spec.spawnId);
  }

  isAlive(m: MemberRef): boolean {
    return m.spawnId !== undefined && existsSync(this.marker(m.cell, m.spawnId));
  }

  async stop(rec: CellRecord, m: MemberRecord): Promise<void> {
    if (m.spawnId) await rm(this.marker(rec.name, m.spawnId), { force: true });
  }

  find(cell: string, spawnId: string): Started | undefined {
    return existsSync(this.marker(cell, spawnId)) ? started(spawnId) : undefined;
  }

  // A marked member "receives" a signal: there is no process to deliver it to.
  signal(rec: CellRecord, m: MemberRecord): boolean {
    return this.isAlive({ cell: rec.name, spawnId: m.spawnId });
  }

  async restore(_rec: CellRecord, base: string, file: string, dirs: readonly string[]): Promise<void> {
    await restoreCheckpoint(file, base, dirs);
  }

  async clear(_rec: CellRecord, base: string, dirs: readonly string[]): Promise<void> {
    for (const d of dirs) await rm(path.join(base, d), { recursive: true, force: true });
  }

  async freeze(): Promise<void> {
    // nothing runs, so nothing writes while a checkpoint is taken
  }

  // Every marker of the cell goes; nothing can survive.
  async stopCell(rec: CellRecord): Promise<number[]> {
    const dir = this.cellDir(rec.name);
    for (const e of await readdir(dir).catch(() => [] as string[])) await rm(path.join(dir, e), { force: true });
    return [];
  }

  async releaseCell(rec: CellRecord): Promise<void> {
    await rm(this.cellDir(rec.name), { recursive: true, force: true });
  }

  async session(rec: CellRecord): Promise<SessionSpawn> {
    throw new LazarusError(
      "NOT_SUPPORTED",
      `cell ${rec.name}: backend dry runs nothing, so it has no shell or exec; use backend process to run members`,
    );
  }
}
