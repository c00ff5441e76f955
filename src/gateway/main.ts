// The model gateway process of one state dir: `node main.js STATE_DIR [PORT]`. It listens on
// 127.0.0.1 (PORT, or one the kernel picks), records its pid, start time and port in
// <state>/gateway/gateway.json once it listens, reloads on SIGHUP and when the cell files change
// (checked each second), and ends on SIGTERM. Provider keys are read from LAZARUS_SECRETS_DIR.
import { mkdir, stat } from "node:fs/promises";
import path from "node:path";
import { procInfo } from "../backends/proc.js";
import { writeFileAtomic } from "../util/fsx.js";
import { Gateway } from "./server.js";
import { gatewayCellsDir, gatewayDir } from "./state.js";

const RELOAD_MS = 1000;

async function main(stateRoot: string, port: number): Promise<void> {
  const complain = (why: string): void => void process.stderr.write(`model gateway: ${why}\n`);
  const gw = new Gateway({ stateRoot, host: { secretsDir: process.env.LAZARUS_SECRETS_DIR || undefined }, env: process.env });
  await gw.reload(complain);
  const bound = await gw.listen(port, "127.0.0.1");
  const startTime = procInfo(process.pid)?.startTime ?? 0;
  const record = `${JSON.stringify({ pid: process.pid, startTime, port: bound })}\n`;
  await mkdir(gatewayDir(stateRoot), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path.join(gatewayDir(stateRoot), "gateway.json"), record, 0o600);
  let seen = -1;
  const reloadIfChanged = async (): Promise<void> => {
    const m = (await stat(gatewayCellsDir(stateRoot)).catch(() => undefined))?.mtimeMs ?? 0;
    if (m !== seen) await gw.reload(complain);
    seen = m;
  };
  process.on("SIGHUP", () => void gw.reload(complain));
  const timer = setInterval(() => void reloadIfChanged(), RELOAD_MS);
  const stop = (): void => {
    clearInterval(timer);
    void gw.close().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

const [stateRoot, portArg] = process.argv.slice(2);
if (!stateRoot) {
  process.stderr.write("usage: main.js STATE_DIR [PORT]\n");
  process.exit(2);
}
main(stateRoot, Number(portArg ?? 0)).catch((err: unknown) => {
  process.stderr.write(`model gateway: ${String(err)}\n`);
  process.exit(1);
});
