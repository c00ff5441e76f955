// Structured logs: one line per action and per error; readable text on a TTY, JSON otherwise.
import pino, { type Logger } from "pino";
import pretty from "pino-pretty";

export type { Logger };

export function createLogger(level: string, stream: NodeJS.WriteStream = process.stdout): Logger {
  const opts = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (stream.isTTY) {
    return pino(
      opts,
      pretty({
        colorize: !("NO_COLOR" in process.env),
        translateTime: "SYS:HH:MM:ss",
        ignore: "pid,hostname",
        sync: true,
        destination: stream,
      }),
    );
  }
  return pino(opts, pino.destination({ dest: (stream as unknown as { fd: number }).fd, sync: true }));
}
