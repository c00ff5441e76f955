// The egress proxy process of one state dir: `node main.js STATE_DIR`, started detached by
// ensureProxy (supervise.ts); its record is <state>/egress/proxy.json (host/detached-main.ts).
import { runDetached } from "../host/detached-main.js";
import { EgressService } from "./service.js";
import { proxyRecordFile } from "./state.js";

runDetached("egress proxy", async (stateRoot) => {
  const service = new EgressService(stateRoot);
  await service.reload();
  return { service, recordFile: proxyRecordFile(stateRoot) };
});
