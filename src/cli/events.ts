// lazarus events: the ledger as a readable stream (time, cell, action, reason, revision), the
// kubectl-events of Lazarus. Reads only; never takes the lock.
import { visible } from "../config/diagnostics.js";
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { Command } from "commander";
import { statePaths } from "../cells/layout.js";
import { parseDuration } from "../config/durations.js";
import { resolveStateDir } from "../compute.js";
import type { LedgerEntry } from "../ledger/ledger.js";
import { parseEgressLine, readEgressEntries, type EventEntry } from "../egress/events.js";
import { eventsFile } from "../egress/state.js";
import path from "node:path";
import { LazarusError } from "../util/errors.js";
import type { Colors } from "../plan/render/colors.js";
import { action, err, out, stdoutColors } from "./common.js";
import { typedOption } from "./flags.js";

const FOLLOW_POLL_MS = 250;

interface EventsOpts {
  stateDir?: string;
  follow?: boolean;
  since?: string;
  tail?: number;
  json?: boolean;
}

export function eventsCommand(): Command {
  return new Command("events")
    .description(
      "the ledger as a stream of events: what Lazarus did to which cell, when and why; with the connections of egress cells (egress, egress-refused)",
    )
    .argument("[cell]", "only this cell's events (and none of the state dir's own, such as revision-rejected)")
    .option("-s, --state-dir <dir>", "state directory (default $LAZARUS_STATE_DIR)")
    .option("-f, --follow", "keep printing events as they are recorded (until interrupted)")
    .option("--since <when>", "only events at or after this: a duration ago (10m, 2h, 7d) or an ISO-8601 time")
    .addOption(typedOption("--tail <n>", "only the last n matching events recorded so far", { kind: "int", min: 0 }))
    .option("--json", "one JSON object per line (seq, time, cell, action, reason, revision, details)")
    .addHelpText(
      "after",
      "\nExamples:\n  lazarus events                 every event so far\n  lazarus events web-1 -f        follow one cell\n  lazarus events --since 1h --json | jq .action\n",
    )
    .action(action(async (cell: string | undefined, o: EventsOpts) => events(cell, o)));
}

// The earliest time to show, from --since.
export function sinceTime(since: string | undefined, now = Date.now()): number | undefined {
  if (since === undefined) return undefined;
  const ago = parseDuration(since);
  if (ago !== undefined) return now - ago;
  const at = Date.parse(since);
  if (!Number.isNaN(at) && /^\d{4}-\d{2}-\d{2}/.test(since)) return at;
  throw new LazarusError("BAD_FLAG", `--since "${since}" is neither a duration (10m, 2h, 7d) nor an ISO-8601 time`);
}

async function events(cell: string | undefined, o: EventsOpts): Promise<number> {
  const file = statePaths(resolveStateDir(o.stateDir)).ledger;
  const from = sinceTime(o.since);
  const wanted = (e: EventEntry) =>
    (cell === undefined || e.cell === cell) && (from === undefined || Date.parse(e.time) >= from);
  const c = stdoutColors();
  const show = (e: EventEntry) => out(o.json ? JSON.stringify(eventJson(e)) : eventLine(e, c));

  // What is recorded so far, read as a stream (a ledger can be large); --tail keeps the last n.
  // The egress proxy's connection events, merged in by time.
  const egressFile = eventsFile(path.dirname(file));
  const egress = (await readEgressEntries(egressFile)).filter(wanted);
  const egressOffset = await stat(egressFile).then(
    (s) => s.size,
    () => 0,
  );
  const kept: EventEntry[] = [];
  let shown = 0;
  let offset = 0;
  const emit = (e: EventEntry): void => {
    if (o.tail === undefined) {
      show(e);
      shown++;
    } else {
      kept.push(e);
      if (kept.length > o.tail) kept.shift();
    }
  };
  const emitEgressUpTo = (time: string | undefined): void => {
    while (egress.length && (time === undefined || (egress[0] as EventEntry).time <= time))
      emit(egress.shift() as EventEntry);
  };
  const size = await stat(file).then(
    (s) => s.size,
    () => 0,
  );
  if (size > 0) {
    const lines = createInterface({ input: createReadStream(file, { start: 0, end: size - 1 }), crlfDelay: Infinity });
    for await (const line of lines) {
      offset += Buffer.byteLength(line) + 1;
      const e = parse(line);
      if (!e || !wanted(e)) continue;
      emitEgressUpTo(e.time);
      emit(e);
    }
    offset = Math.min(offset, size);
  }
  emitEgressUpTo(undefined);
  for (const e of kept) show(e);
  shown += kept.length;
  if (!o.follow) {
    if (shown === 0 && !o.json)
      err(
        cell
          ? `No events for cell ${cell}${o.since ? ` since ${o.since}` : ""}.`
          : `No events${o.since ? ` since ${o.since}` : ""} in ${file}.`,
      );
    return 0;
  }
  const onEntry = (e: EventEntry): void => {
    if (wanted(e)) show(e);
  };
  await Promise.all([follow(file, offset, onEntry, parse), follow(egressFile, egressOffset, onEntry, parseEgressLine)]);
  return 0;
}

// Print what is appended to the ledger from offset on, until SIGINT or SIGTERM. Lines are only
// complete once they end in a newline; a partial line waits for the rest.
async function follow(
  file: string,
  offset: number,
  onEntry: (e: EventEntry) => void,
  parseLine: (line: string) => EventEntry | undefined,
): Promise<void> {
  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  process.once("SIGINT", stop).once("SIGTERM", stop);
  let pending = "";
  while (!stopped) {
    const size = await stat(file).then(
      (s) => s.size,
      () => 0,
    );
    if (size < offset) offset = 0; // replaced (a new state dir): start over
    if (size > offset) {
      const fh = await open(file, "r");
      try {
        const buf = Buffer.alloc(size - offset);
        const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
        offset += bytesRead;
        pending += buf.subarray(0, bytesRead).toString("utf8");
      } finally {
        await fh.close();
      }
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const e = parseLine(line);
        if (e) onEntry(e);
      }
    }
    await sleep(FOLLOW_POLL_MS);
  }
}

function parse(line: string): LedgerEntry | undefined {
  if (!line.trim()) return undefined;
  try {
    const e = JSON.parse(line) as LedgerEntry;
    return typeof e.time === "string" && typeof e.cell === "string" && typeof e.action === "string" ? e : undefined;
  } catch {
    return undefined; // a torn last line; `lazarus ledger verify` reports it
  }
}

export function eventJson(e: EventEntry): Record<string, unknown> {
  return {
    ...(e.seq !== undefined ? { seq: e.seq } : {}),
    time: e.time,
    cell: e.cell,
    action: e.action,
    reason: e.reason,
    ...(e.revision ? { revision: e.revision } : {}),
    ...(e.details ? { details: e.details } : {}),
  };
}

export function eventLine(e: EventEntry, c: Colors): string {
  const time = e.time.replace(/\.\d+Z$/, "Z");
  const rev = e.revision ? c.dim(`  (revision ${e.revision.slice(0, 12)})`) : "";
  return `${c.dim(time)}  ${e.cell.padEnd(20)}  ${colorAction(e.action, c).padEnd(16 + (colorAction(e.action, c).length - e.action.length))}  ${visible(e.reason)}${rev}`;
}

function colorAction(action: string, c: Colors): string {
  if (/fail|rejected|refused|down|held/.test(action)) return c.red(action);
  if (/close|scrub|remove|purge/.test(action)) return c.yellow(action);
  if (/^(shell|exec)/.test(action)) return c.cyan(action); // a human in a cell
  if (/create|invite|accept|resurrect|restore/.test(action)) return c.green(action);
  return action;
}
