// The model gateway process of one state dir: `node main.js STATE_DIR`, started detached by
// ensureGateway (supervise.ts). It listens on 127.0.0.1 (the port of its settings, else the one it
// had before, else one the kernel picks) and records that port with its pid in
// <state>/gateway/gateway.json (host/detached-main.ts). SIGHUP reads its settings again too. It
// opens a door in each member's network namespace that its cell file names (netns), on
// 127.0.0.1:4000 there, again from the cell files after its own restart.
import { stat } from "node:fs/promises";
import { runDetached, type DetachedService } from "../host/detached-main.js";
import { writeDoorsFile } from "../bridge/doors.js";
import { Gateway } from "./server.js";
import {
  gatewayCellsDir,
  gatewayDoorsFile,
  gatewayRecordFile,
  readGatewayRecord,
  readGatewaySettings,
} from "./state.js";

runDetached("model gateway", async (stateRoot) => {
  const complain = (why: string): void => void process.stderr.write(`model gateway: ${why}\n`);
  const gw = new Gateway({ stateRoot, host: {} });
  // the cell files again, the members' doors opened or closed, and which are open written down
  const reload = async (): Promise<void> => {
    await gw.reload(complain);
    await writeDoorsFile(gatewayDoorsFile(stateRoot), gw.openDoors());
  };
  const reread = async (): Promise<void> => {
    const s = await readGatewaySettings(stateRoot);
    gw.configure({ secretsDir: s.secretsDir }, s.providersFile ? { LAZARUS_PROVIDERS: s.providersFile } : {});
    await reload();
  };
  await reread();
  const wanted = (await readGatewaySettings(stateRoot)).port;
  const before = (await readGatewayRecord(stateRoot))?.port;
  const port = await gw.listen(wanted ?? before ?? 0, "127.0.0.1").catch(() => gw.listen(wanted ?? 0, "127.0.0.1"));
  let seen = -1;
  const service: DetachedService = {
    reload: reread,
    async reloadIfChanged() {
      const m = (await stat(gatewayCellsDir(stateRoot)).catch(() => undefined))?.mtimeMs ?? 0;
      if (m !== seen) await reload();
      seen = m;
    },
    close: () => gw.close(),
  };
  return { service, recordFile: gatewayRecordFile(stateRoot), record: { port } };
});
