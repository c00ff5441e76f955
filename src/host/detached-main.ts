// The detached helper's own side (see detached.ts for the side that starts it): `node main.js
// STATE_DIR`. It starts its service, records its pid and start time (and what it adds) once it
// serves, reloads on SIGHUP and, each second, when its files changed, and ends on SIGTERM or SIGINT.
import { writeFileAtomic } from "../util/fsx.js";
import { procInfo } from "./proc.js";

export interface DetachedService {
  reload(): Promise<void>; // everything read again (SIGHUP)
  reloadIfChanged(): Promise<void>; // each second: read again only what changed
  close(): Promise<void>;
}

export interface Started {
  service: DetachedService;
  recordFile: string;
  record?: Record<string, unknown>; // beside pid and startTime, e.g. the port it listens on
}

const RELOAD_MS = 1000;

export function runDetached(what: string, start: (stateRoot: string) => Promise<Started>): void {
  const stateRoot = process.argv[2];
  if (!stateRoot) {
    process.stderr.write("usage: main.js STATE_DIR\n");
    process.exit(2);
  }
  serve(stateRoot, start).catch((err: unknown) => {
    process.stderr.write(`${what}: ${String(err)}\n`);
    process.exit(1);
  });
}

async function serve(stateRoot: string, start: (stateRoot: string) => Promise<Started>): Promise<void> {
  const { service, recordFile, record } = await start(stateRoot);
  const startTime = procInfo(process.pid)?.startTime ?? 0;
  await writeFileAtomic(recordFile, `${JSON.stringify({ pid: process.pid, startTime, ...record })}\n`, 0o600);
  process.on("SIGHUP", () => void service.reload());
  const timer = setInterval(() => void service.reloadIfChanged(), RELOAD_MS);
  const stop = (): void => {
    clearInterval(timer);
    void service.close().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
