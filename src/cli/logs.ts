// lazarus logs: members' output, as `docker compose logs` / `kubectl logs` show it. Reads only;
// never takes the lock. See docs/logs.md.
import { Command } from "commander";
import { resolveStateDir } from "../compute.js";
import {
  completeLines,
  findCellLogs,
  interleave,
  openLog,
  parseLog,
  pickMember,
  readFrom,
  readMember,
  type LogLine,
  type LogSource,
  type MemberRead,
} from "../cells/logs.js";
import type { Colors } from "../plan/render/colors.js";
import { setTimeout as sleep } from "node:timers/promises";
import { action, err, stdoutColors } from "./common.js";
import { sinceTime } from "./events.js";
import { typedOption } from "./flags.js";
import { visible } from "../config/diagnostics.js";

const FOLLOW_POLL_MS = 250;

interface LogsOpts {
  stateDir?: string;
  follow?: boolean;
  since?: string;
  tail?: number;
  timestamps?: boolean;
  json?: boolean;
  raw?: boolean;
}

export function logsCommand(): Command {
  return new Command("logs")
    .description(
      "members' output (stdout and stderr), each line stamped with when it was written; all members interleaved in time order unless one is named",
    )
    .argument("<cell>", "the cell (live, closed, or archived after scrub)")
    .argument("[member]", "only this member: its identity (agent:allegro) or home name (allegro)")
    .option("-s, --state-dir <dir>", "state directory (default $LAZARUS_STATE_DIR)")
    .option("-f, --follow", "keep printing lines as members write them (until interrupted)")
    .option("--since <when>", "only lines written at or after this: a duration ago (10m, 2h, 7d) or an RFC 3339 time")
    .addOption(typedOption("--tail <n>", "only the last n lines of each member so far", { kind: "int", min: 0 }))
    .option("-t, --timestamps", "show when each line was written")
    .option("--json", "one JSON object per line: time, cell, member, line")
    .option(
      "--raw",
      "on a terminal, print members' control characters (colours, cursor movement) as written; without it they are shown as \\xNN there, so a member cannot rewrite or hide what you read",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  lazarus logs web-1                      every member, interleaved, prefixed\n  lazarus logs web-1 allegro -f --tail 20\n  lazarus logs web-1 --since 10m --timestamps\n  lazarus logs web-1 --json | jq -r .line\n",
    )
    .action(action(async (cell: string, member: string | undefined, o: LogsOpts) => logs(cell, member, o)));
}

async function logs(cell: string, member: string | undefined, o: LogsOpts): Promise<number> {
  const from = sinceTime(o.since);
  const found = await findCellLogs(resolveStateDir(o.stateDir), cell);
  const sources = member ? [pickMember(found, member)] : found.members;
  const prefixed = member === undefined;
  const width = Math.max(0, ...sources.map((s) => s.identity.length));
  const c = stdoutColors();
  const palette = [c.cyan, c.yellow, c.green, c.magenta, c.blue, c.red];
  const colorOf = new Map(sources.map((s, i) => [s.identity, palette[i % palette.length] as (s: string) => string]));
  const wanted = (l: LogLine): boolean => from === undefined || (!Number.isNaN(l.time) && l.time >= from);
  // A member's output is its own, not Lazarus's: on a terminal its control characters are shown,
  // not obeyed (an escape sequence could erase lines, move the cursor or retitle the window);
  // piped, or with --raw, the text goes as written.
  const text =
    process.stdout.isTTY && !o.raw
      ? (l: LogLine): LogLine => ({ ...l, text: visible(l.text) })
      : (l: LogLine): LogLine => l;
  const show = (l: LogLine): void => {
    process.stdout.write(
      `${o.json ? JSON.stringify({ time: l.stamp || null, cell, member: l.member, line: l.text }) : lineText(text(l), { prefixed, width, timestamps: Boolean(o.timestamps), color: colorOf.get(l.member) ?? ((s) => s), c })}\n`,
    );
  };

  const reads: MemberRead[] = [];
  for (const s of sources) {
    const r = await readMember(s);
    let lines = r.lines.filter(wanted);
    if (o.tail !== undefined) lines = o.tail === 0 ? [] : lines.slice(-o.tail);
    reads.push({ ...r, lines });
  }
  const merged = interleave(reads.map((r) => r.lines));
  for (const l of merged) show(l);
  if (!o.follow) {
    if (merged.length === 0 && !o.json)
      err(
        `No logs for ${member ? `member ${sources[0]?.identity} of ` : ""}cell ${cell}${o.since ? ` since ${o.since}` : ""}${found.where === "live" ? "" : ` (${found.where})`}.`,
      );
    return 0;
  }
  await follow(sources, reads, (batch) => {
    for (const l of interleave(batch)) if (wanted(l)) show(l);
  });
  return 0;
}

function lineText(
  l: LogLine,
  o: { prefixed: boolean; width: number; timestamps: boolean; color: (s: string) => string; c: Colors },
): string {
  const time = o.timestamps ? `${o.c.dim(l.stamp || "-".padEnd(24))} ` : "";
  const prefix = o.prefixed ? `${o.color(l.member.padEnd(o.width))} ${o.c.dim("|")} ` : "";
  return `${prefix}${time}${l.text}`;
}

// Print what members append from where reading stopped, until SIGINT or SIGTERM. A rotation (a
// new file under the name) is seen by its inode: the rest of the old file (now <home>.log.1) is
// read first. Members that appear later (a log file that was missing) are followed from their start.
async function follow(
  sources: LogSource[],
  reads: MemberRead[],
  onBatch: (perMember: LogLine[][]) => void,
): Promise<void> {
  let stopped = false;
  const stop = (): void => {
    stopped = true;
  };
  process.once("SIGINT", stop).once("SIGTERM", stop);
  const state = sources.map((s, i) => ({
    src: s,
    ino: reads[i]?.ino,
    offset: reads[i]?.offset ?? 0,
    prev: reads[i]?.prev ?? { time: Number.NaN, stamp: "" },
  }));
  while (!stopped) {
    const batch: LogLine[][] = [];
    for (const st of state) {
      const lines: LogLine[] = [];
      const fh = await openLog(st.src.file);
      if (!fh) {
        batch.push(lines);
        continue;
      }
      try {
        const ino = (await fh.stat()).ino;
        if (st.ino !== undefined && ino !== st.ino) {
          // Rotated: finish the old file where it now is, then start the new one from its beginning.
          const old = await openLog(`${st.src.file}.1`);
          if (old) {
            try {
              if ((await old.stat()).ino === st.ino)
                lines.push(...parseLog(completeLines(await readFrom(old, st.offset)).text, st.src.identity, st.prev));
            } finally {
              await old.close();
            }
          }
          st.offset = 0;
        }
        st.ino = ino;
        const size = (await fh.stat()).size;
        if (size < st.offset) st.offset = 0; // truncated (keep: 0)
        const { text, bytes } = completeLines(await readFrom(fh, st.offset));
        st.offset += bytes;
        lines.push(...parseLog(text, st.src.identity, st.prev));
      } finally {
        await fh.close();
      }
      batch.push(lines);
    }
    if (batch.some((b) => b.length)) onBatch(batch);
    await sleep(FOLLOW_POLL_MS);
  }
}
