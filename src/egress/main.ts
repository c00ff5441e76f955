// The egress proxy process of one state dir: `node main.js STATE_DIR`, started detached by
// ensureProxy (supervise.ts). It records its pid and start time in <state>/egress/proxy.json
// once it listens, reloads on SIGHUP and every second (when its files changed), and ends on SIGTERM.
import { procInfo } from "../host/proc.js";
import { writeFileAtomic } from "../util/fsx.js";
import { EgressService } from "./service.js";
import { proxyRecordFile } from "./state.js";

const RELOAD_MS = 1000;

async function main(stateRoot: string): Promise<void> {
  const service = new EgressService(stateRoot);
  await service.reload();
  const startTime = procInfo(process.pid)?.startTime ?? 0;
  await writeFileAtomic(proxyRecordFile(stateRoot), `${JSON.stringify({ pid: process.pid, startTime })}\n`, 0o600);
  process.on("SIGHUP", () => void service.reload());
  const timer = setInterval(() => void service.reloadIfChanged(), RELOAD_MS);
  const stop = (): void => {
    clearInterval(timer);
    void service.close().finally(() => process.exit(0));
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
  process.stderr.write(`egress proxy: ${String(err)}\n`);
  process.exit(1);
});
