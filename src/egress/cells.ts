// The egress side of a backend that runs members in network namespaces of their own (sandbox,
// container): keeping the proxy's file of a cell in step with its record, and a member's door
// open before it starts.
import type { CellRecord } from "../cells/record.js";
import { memberNetnsFile } from "../bridge/netns.js";
import { waitForDoor } from "../bridge/doors.js";
import { egressSettings } from "./settings.js";
import { doorsFile, readCellFiles, writeCellFile } from "./state.js";
import { dropProxyCell, ensureProxy, runningProxy } from "./supervise.js";

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
    netns: memberNetnsFile(stateRoot, rec.uid, m.home),
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

// Before a member starts (its namespace file made, with inode ino): the proxy's door in it is open.
export async function memberEgressReady(stateRoot: string, rec: CellRecord, netns: string, ino: number): Promise<void> {
  await syncCellEgress(stateRoot, rec);
  await waitForDoor(
    doorsFile(stateRoot),
    netns,
    ino,
    async () => (await runningProxy(stateRoot))?.pid,
    "the egress proxy",
  );
}

// The cell closed or left egress: its file goes away (the proxy closes its doors on reload), and
// the proxy with it when no egress cell is left (callers hold the state dir's lock).
export async function forgetCellEgress(stateRoot: string, cell: string): Promise<void> {
  const files = await readCellFiles(stateRoot);
  if (!files.some((f) => f.cell === cell)) return;
  await dropProxyCell(stateRoot, cell);
}
