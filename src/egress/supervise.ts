// Keeping a state dir's egress proxy running: it is a detached process of its own (cells outlive
// every `lazarus apply`, and the daemon may not run), recorded in <state>/egress/proxy.json by pid
// and start time. Whoever reconciles calls ensureProxy: a live proxy is told to reload, a dead one
// is started again. While none runs, members' connections to it are refused: their network
// namespace has no other way out. Starting and stopping it happen holding egress/helper.lock, so
// two Lazarus processes of one state dir never start two.
import path from "node:path";
import {
  ensureDetached,
  holdingDetached,
  reloadDetached,
  runningDetached,
  stopDetached,
  type Detached,
} from "../host/detached.js";
import { egressSettings, type EgressSettings } from "./settings.js";
import {
  egressDir,
  proxyRecordFile,
  readCellFiles,
  removeCellFile,
  writeSettingsFile,
  type ProxyRecord,
} from "./state.js";

// The proxy as a detached helper of its state dir.
function proxy(stateRoot: string): Detached {
  return {
    what: "the egress proxy",
    stateRoot,
    dir: egressDir(stateRoot),
    main: "egress/main.js",
    record: proxyRecordFile(stateRoot),
    log: path.join(egressDir(stateRoot), "proxy.log"),
    mark: "LAZARUS_EGRESS_PROXY",
    errorCode: "EGRESS_PROXY_FAILED",
  };
}

// The running proxy of this state dir, if any.
export function runningProxy(stateRoot: string): Promise<ProxyRecord | undefined> {
  return runningDetached<ProxyRecord>(proxy(stateRoot));
}

// Make sure the proxy runs with these bounds and has read the cell files: reload a live one,
// start a dead one. Returns its pid.
export function ensureProxy(stateRoot: string, settings: EgressSettings): Promise<number> {
  const d = proxy(stateRoot);
  return holdingDetached(d, async () => {
    await writeSettingsFile(stateRoot, settings);
    return ensureDetached(d);
  });
}

// Called at the start of every apply (CLI and daemon): when some cell of this state dir has an
// egress list, its proxy runs (a dead one is started again). A proxy that cannot start fails no
// other cell: the egress cells' member starts report it, and their members' connections are
// refused meanwhile.
export async function keepEgressProxy(stateRoot: string, hostEnv: NodeJS.ProcessEnv): Promise<void> {
  try {
    if ((await readCellFiles(stateRoot)).length === 0) return; // no lock taken (nor egress/ made) without one
    await holdingDetached(proxy(stateRoot), async () => {
      if ((await readCellFiles(stateRoot)).length) await ensureProxy(stateRoot, egressSettings(hostEnv));
    });
  } catch {
    // reported where it matters: syncCellEgress throws the same error for each egress cell
  }
}

// The cell's file goes, and the proxy with it when no egress cell is left, else it reloads: decided
// under the proxy's lock, so a cell another process syncs meanwhile finds it running.
export function dropProxyCell(stateRoot: string, cell: string): Promise<void> {
  return holdingDetached(proxy(stateRoot), async () => {
    await removeCellFile(stateRoot, cell);
    if ((await readCellFiles(stateRoot)).length === 0) await stopProxy(stateRoot);
    else await reloadProxy(stateRoot);
  });
}

// Stop this state dir's proxy (tests; a host being taken down).
export function stopProxy(stateRoot: string): Promise<void> {
  return stopDetached(proxy(stateRoot));
}

// Tell a running proxy to read its files again (nothing when none runs).
export function reloadProxy(stateRoot: string): Promise<void> {
  return reloadDetached(proxy(stateRoot));
}
