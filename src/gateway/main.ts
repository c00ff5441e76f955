// The model gateway process of one state dir: `node main.js STATE_DIR`, started detached by
// ensureGateway (supervise.ts). It listens on 127.0.0.1 (the port of its settings, else the one it
// had before, else one the kernel picks) and records that port with its pid in
// <state>/gateway/gateway.json (host/detached-main.ts). SIGHUP reads its settings again too. It
// opens a door in each member's network namespace that its cell file names (netns), on
// 127.0.0.1:4000 there, again from the cell files after its own restart.
import { stat } from "node:fs/promises";
import { runDetached, type DetachedService } from "../host/detached-main.js";
import { writeDoorsFile, type Doors } from "../bridge/doors.js";
import { Gateway } from "./server.js";
import { gatewayDir, gatewayDoorsFile, gatewayRecordFile, readGatewayRecord, readGatewaySettings } from "./state.js";

runDetached("model gateway", async (stateRoot) => {
  const complain = (why: string): void => void process.stderr.write(`model gateway: ${why}\n`);
  // after every reload (a signal, the timer, or a request that saw the cells change): which
  // members' doors are open, written down for whoever waits for one
  const onReloaded = (doors: Doors): Promise<void> => writeDoorsFile(gatewayDoorsFile(stateRoot), doors);
  const gw = new Gateway({ stateRoot, host: {}, onReloaded });
  const reread = async (): Promise<void> => {
    const s = await readGatewaySettings(stateRoot);
    gw.configure(
      { secretsDir: s.secretsDir },
      {
        ...(s.providersFile ? { LAZARUS_PROVIDERS: s.providersFile } : {}),
        ...(s.providerTools ? { LAZARUS_GATEWAY_PROVIDER_TOOLS: s.providerTools } : {}),
      },
    );
    await gw.reload(complain);
  };
  await reread();
  const wanted = (await readGatewaySettings(stateRoot)).port;
  const before = (await readGatewayRecord(stateRoot))?.port;
  const port = await gw.listen(wanted ?? before ?? 0, "127.0.0.1").catch(() => gw.listen(wanted ?? 0, "127.0.0.1"));
  const service: DetachedService = {
    reload: reread,
    async reloadIfChanged() {
      // Its state dir is gone (deleted whole): nothing is left to serve.
      if (!(await stat(gatewayDir(stateRoot)).catch(() => undefined))) {
        await gw.close().catch(() => undefined);
        process.exit(0);
      }
      await gw.reloadIfChanged(complain, true); // a stat a second, whatever the watch says
    },
    close: () => gw.close(),
  };
  return { service, recordFile: gatewayRecordFile(stateRoot), record: { port } };
});
