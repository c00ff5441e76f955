// Which members get a network namespace file (a bridge) and what a backend does with it, whatever
// the backend: a member of an egress cell (the egress proxy's door), and one that calls the model
// gateway without the host's network (the gateway's door). Backends ask needsBridge of the record;
// nothing here knows a backend's name.
import { access, readdir } from "node:fs/promises";
import path from "node:path";
import type { CellRecord } from "../cells/record.js";
import { memberEgressReady, syncCellEgress } from "../egress/cells.js";
import { memberGatewayReady } from "../gateway/supervise.js";
import { readUntrustedJson, CAPS } from "../util/safe-fs.js";
import { ensureNetns, memberNetnsFile, removeCellNetns, removeNetns, sweepNetns } from "./netns.js";

// Whether the member of home needs a namespace file: its cell has an egress list, or it calls the
// model gateway (usesGateway, set by whoever hands it a gateway token) with no host network.
export function needsBridge(rec: Pick<CellRecord, "network" | "members">, home: string): boolean {
  if (rec.network === "egress") return true;
  if (rec.network === "host") return false;
  return rec.members.some((m) => m.home === home && m.usesGateway === true);
}

// Before anything of a member runs (start, session, verify): its namespace file made, and the
// doors that belong in it open. The file, or undefined when the member needs none.
export async function readyBridge(stateRoot: string, rec: CellRecord, home: string): Promise<string | undefined> {
  if (!needsBridge(rec, home)) return undefined;
  const file = memberNetnsFile(stateRoot, rec.uid, home);
  const ino = await ensureNetns(file);
  if (rec.network === "egress") await memberEgressReady(stateRoot, rec, file, ino);
  if (rec.members.some((m) => m.home === home && m.usesGateway)) await memberGatewayReady(stateRoot, file, ino);
  return file;
}

// A member left its cell (already stopped; rec no longer lists it): the services forget it and
// its namespace file goes.
export async function dropMemberBridge(stateRoot: string, rec: CellRecord, home: string): Promise<void> {
  const file = memberNetnsFile(stateRoot, rec.uid, home);
  if (!(await exists(file))) return;
  if (rec.network === "egress") await syncCellEgress(stateRoot, rec);
  await removeNetns(file);
}

// The cell's members are all stopped (close, scrub): every namespace file of its incarnation goes.
export async function dropCellBridges(stateRoot: string, rec: Pick<CellRecord, "uid">): Promise<void> {
  await removeCellNetns(stateRoot, rec.uid);
}

// What a crash left: the namespace files of this state dir whose cell incarnation no record
// under cellsDir names (live cells and cells being made, .staging-*). Nothing is removed when some
// record cannot be read. (A removed member's file whose removal a crash interrupted stays until
// its cell closes: sweeping by member would race a member being added by another process.)
export async function sweepBridges(stateRoot: string, cellsDir: string): Promise<string[]> {
  const names = await readdir(cellsDir).catch(() => [] as string[]);
  const live = new Set<string>();
  for (const n of names) {
    const file = path.join(cellsDir, n, ".lazarus", "cell.json");
    if (!(await exists(file))) {
      if (n.startsWith(".staging-")) return []; // a cell being made: its record is not written yet
      continue;
    }
    const rec = await readUntrustedJson<CellRecord>(file, CAPS.record).catch(() => undefined);
    if (!rec?.uid) return [];
    live.add(rec.uid);
    if (rec.replacing?.uid) live.add(rec.replacing.uid);
  }
  return sweepNetns(stateRoot, (uid) => live.has(uid));
}

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );
