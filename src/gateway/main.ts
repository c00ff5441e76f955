// The model gateway process of one state dir: `node main.js STATE_DIR`, started detached by
// ensureGateway (supervise.ts). It listens on 127.0.0.1 (the port of its settings, else the one it
// had before, else one the kernel picks), records its pid, start time and port in
// <state>/gateway/gateway.json once it listens, reloads on SIGHUP and when the cell files change
// (checked each second), and ends on SIGTERM.
import { stat } from "node:fs/promises";
import { procInfo } from "../host/proc.js";
import { writeFileAtomic } from "../util/fsx.js";
import { Gateway } from "./server.js";
import { gatewayCellsDir, gatewayRecordFile, readGatewayRecord, readGatewaySettings } from "./state.js";

const RELOAD_MS = 1000;

async function main(stateRoot: string): Promise<void> {
  const complain = (why: string): void => void process.stderr.write(`model gateway: ${why}\n`);
  const settings = await readGatewaySettings(stateRoot);
  const env: NodeJS.ProcessEnv = settings.providersFile ? { LAZARUS_PROVIDERS: settings.providersFile } : {};
  const gw = new Gateway({ stateRoot, host: { secretsDir: settings.secretsDir }, env });
  await gw.reload(complain);
  const before = (await readGatewayRecord(stateRoot))?.port;
  const port = await gw
    .listen(settings.port ?? before ?? 0, "127.0.0.1")
    .catch(() => gw.listen(settings.port ?? 0, "127.0.0.1"));
  const startTime = procInfo(process.pid)?.startTime ?? 0;
  await writeFileAtomic(
    gatewayRecordFile(stateRoot),
    `${JSON.stringify({ pid: process.pid, startTime, port })}\n`,
    0o600,
  );
  let seen = -1;
  const reloadIfChanged = async (): Promise<void> => {
    const m = (await stat(gatewayCellsDir(stateRoot)).catch(() => undefined))?.mtimeMs ?? 0;
    if (m !== seen) await gw.reload(complain);
    seen = m;
  };
  const reread = async (): Promise<void> => {
    const s = await readGatewaySettings(stateRoot);
    gw.configure({ secretsDir: s.secretsDir }, s.providersFile ? { LAZARUS_PROVIDERS: s.providersFile } : {});
    await gw.reload(complain);
  };
  process.on("SIGHUP", () => void reread());
  const timer = setInterval(() => void reloadIfChanged(), RELOAD_MS);
  const stop = (): void => {
    clearInterval(timer);
    void gw.close().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

const stateRoot = process.argv[2];
if (!stateRoot) {
  process.stderr.write("usage: main.js STATE_DIR\n");
  process.exit(2);
}
main(stateRoot).catch((err: unknown) => {
  process.stderr.write(`model gateway: ${String(err)}\n`);
  process.exit(1);
});
