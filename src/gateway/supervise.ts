// Keeping a state dir's model gateway running, as the egress proxy is kept (host/detached.ts).
// While none runs, members' calls to it are refused: nothing reaches a provider without it.
import { mkdir } from "node:fs/promises";
import path from "node:path";
import {
  ensureDetached,
  holdingDetached,
  reloadDetached,
  runningDetached,
  stopDetached,
  type Detached,
} from "../host/detached.js";
import { writeFileAtomic } from "../util/fsx.js";
import { waitForDoor } from "../bridge/doors.js";
import {
  gatewayDir,
  gatewayDoorsFile,
  gatewayRecordFile,
  gatewaySettingsFile,
  readGatewayRecord,
  type GatewayRecord,
  type GatewaySettings,
} from "./state.js";

function gateway(stateRoot: string): Detached {
  return {
    what: "the model gateway",
    stateRoot,
    dir: gatewayDir(stateRoot),
    main: "gateway/main.js",
    record: gatewayRecordFile(stateRoot),
    log: path.join(gatewayDir(stateRoot), "gateway.log"),
    mark: "LAZARUS_MODEL_GATEWAY",
    errorCode: "GATEWAY_FAILED",
  };
}

// Run body holding the gateway's lock (gateway/helper.lock): what one Lazarus process decides
// there (start it, stop it when no cell is left) no other process of the state dir undoes meanwhile.
export function holdingGateway<T>(stateRoot: string, body: () => Promise<T>): Promise<T> {
  return holdingDetached(gateway(stateRoot), body);
}

export function runningGateway(stateRoot: string): Promise<GatewayRecord | undefined> {
  return runningDetached<GatewayRecord>(gateway(stateRoot));
}

// Make sure the gateway runs with these settings and has read the cell files. Returns its record.
// Its settings are written and it is started under its lock, so two processes never start two.
export function ensureGateway(stateRoot: string, settings: GatewaySettings): Promise<GatewayRecord> {
  const d = gateway(stateRoot);
  return holdingDetached(d, async () => {
    await mkdir(d.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(gatewaySettingsFile(stateRoot), `${JSON.stringify(settings)}\n`, 0o600);
    await ensureDetached(d);
    return (await readGatewayRecord(stateRoot)) as GatewayRecord;
  });
}

export function stopGateway(stateRoot: string): Promise<void> {
  return stopDetached(gateway(stateRoot));
}

export function reloadGateway(stateRoot: string): Promise<void> {
  return reloadDetached(gateway(stateRoot));
}

// Before a member in a namespace of its own starts: the gateway has read its entry again and
// opened the member's door in that namespace (file netns, inode ino).
export async function memberGatewayReady(stateRoot: string, netns: string, ino: number): Promise<void> {
  await reloadGateway(stateRoot);
  await waitForDoor(
    gatewayDoorsFile(stateRoot),
    netns,
    ino,
    async () => (await runningGateway(stateRoot))?.pid,
    "the model gateway",
  );
}
