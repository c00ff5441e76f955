// The egress side of a backend that runs members in network namespaces of their own (sandbox,
// container): keeping the proxy's file of a cell in step with its record, and a member's socket
// ready before it starts.
import type { CellRecord } from "../cells/record.js";
import { egressSettings } from "./settings.js";
import { rm } from "node:fs/promises";
import { memberSocketDir, readCellFiles, removeCellFile, writeCellFile } from "./state.js";
import { ensureProxy, reloadProxy, stopProxy, waitForSocket } from "./supervise.js";

export const socketDirOf = (stateRoot: string, rec: Pick<CellRecord, "uid">, home: string): string =>
  memberSocketDir(stateRoot, rec.uid, home);

// The cell's list and members as the proxy reads them, and the proxy running (an egress cell);
// or the cell's file gone (any other network).
export async function syncCellEgress(
  stateRoot: string,
  rec: CellRecord,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  if (rec.network !== "egress") {
    await forgetCellEgress(stateRoot, rec.name);
    return;
  }
  const members = rec.members.map((m) => ({
    identity: m.identity,
    home: m.home,
    socketDir: socketDirOf(stateRoot, rec, m.home),
  }));
  await writeCellFile(stateRoot, {
    formatVersion: 1,
    cell: rec.name,
    uid: rec.uid,
    entries: rec.egress ?? [],
    members,
  });
  await ensureProxy(stateRoot, egressSettings(env));
}

// Before a member starts: its socket answers.
export async function memberEgressReady(stateRoot: string, rec: CellRecord, home: string): Promise<string> {
  await syncCellEgress(stateRoot, rec);
  const dir = socketDirOf(stateRoot, rec, home);
  await waitForSocket(dir);
  return dir;
}

// The cell closed or left egress: its file and its members' socket dirs go away, and the proxy
// with them when no egress cell is left (callers hold the state dir's lock).
export async function forgetCellEgress(stateRoot: string, cell: string): Promise<void> {
  const files = await readCellFiles(stateRoot);
  const mine = files.find((f) => f.cell === cell);
  if (!mine) return;
  await removeCellFile(stateRoot, cell);
  if (files.length === 1) await stopProxy(stateRoot);
  else await reloadProxy(stateRoot);
  for (const m of mine.members) await rm(m.socketDir, { recursive: true, force: true });
}
