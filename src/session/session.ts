// Humans (or an operator acting as a member) inside a cell: `lazarus shell` and `lazarus exec`.
// A session runs in the member's own view of the cell, through the cell's backend (see
// Backend.session), and is recorded in the ledger twice: when it starts (who, the host user, the
// command) and when it ends (exit code or signal, duration). Each record takes the state-dir lock
// only for the append; the lock is never held while the session runs, so apply, watch and accept
// carry on meanwhile.
import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { cellPaths, statePaths } from "../cells/layout.js";
import { lockCell } from "../lock/cell-lock.js";
import type { CellRecord, MemberRecord } from "../cells/record.js";
import { resolveNow, withStateLock, type EngineOptions, type Locked } from "../engine.js";
import { backends, findBackend } from "../backends/registry.js";
import { memberSpec, type SessionSpawn, type SessionSpec } from "../backends/backend.js";
import { roleMounts } from "../backends/sandbox/argv.js";
import { hostSettings } from "../host/settings.js";
import { CAPS, readUntrustedJson } from "../util/safe-fs.js";
import { LazarusError } from "../util/errors.js";

export type SessionKind = "shell" | "exec";

export interface SessionRequest {
  kind: SessionKind;
  cell: string;
  identity: string;
  command: string[]; // exec: the command; shell: filled in with the shell
  shell?: string; // --shell; default: defaultShell(backend)
  tty?: { rows: number; cols: number; term?: string };
  noStdin?: boolean; // exec: stdin is not passed (as ssh -n)
}

// Whoever runs Lazarus on the host, and who they were before sudo.
export function hostUser(env: NodeJS.ProcessEnv = process.env): string {
  let name: string;
  try {
    name = os.userInfo().username;
  } catch {
    name = `uid ${process.getuid?.() ?? "?"}`;
  }
  return env.SUDO_USER && env.SUDO_USER !== name ? `${name} (sudo from ${env.SUDO_USER})` : name;
}

function isExecutable(p: string): boolean {
  try {
    const st = statSync(p);
    return st.isFile() && (st.mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

// The shell when --shell is not given: the operator's own ($SHELL) where the member's view shows
// the host's system dirs and it is there, else /bin/sh (an image may have nothing else).
export function defaultShell(backend: string, env: NodeJS.ProcessEnv = process.env): string {
  const mine = env.SHELL;
  const sessions = findBackend(backend)?.capabilities.sessions;
  const view = sessions ? sessions.shell : "host";
  if (view === "image" || !mine || !path.isAbsolute(mine) || !isExecutable(mine)) return "/bin/sh";
  if (view === "system" && !/^\/(usr|bin|sbin)\//.test(path.normalize(mine))) return "/bin/sh"; // not in the member's view
  return mine;
}

// The cell states a session may enter: the cell exists and runs (downed: its executor is down,
// its dirs are there; checkpointing: an interrupted checkpoint, thawed when the lock is taken).
const OPEN_STATES = new Set(["active", "downed", "checkpointing"]);

// Why this identity may not have a session in this cell now, or undefined when it may.
export function refusal(rec: CellRecord, identity: string, kind: SessionKind): string | undefined {
  if (!OPEN_STATES.has(rec.state)) return `cell ${rec.name} is ${rec.state}; a ${kind} needs an active cell`;
  const m = rec.members.find((x) => x.identity === identity);
  if (!m)
    return `${identity} is not a member of cell ${rec.name} (members: ${rec.members.map((x) => x.identity).join(", ") || "none"}); add it to the cell's members and apply`;
  if (m.status === "invited")
    return `${identity} has not accepted its invitation to cell ${rec.name} yet; run lazarus accept ${rec.name} ${identity} --token - first`;
  if (m.status === "revoked")
    return `the invitation of ${identity} to cell ${rec.name} was revoked${m.revokedAt ? ` at ${m.revokedAt}` : ""} (not accepted in time); it needs a new invitation`;
  const sessions = findBackend(rec.backend)?.capabilities.sessions;
  if (sessions && !sessions.readOnlyRoles && roleMounts(m.role).project === "ro") {
    return `${identity} is ${m.role === "guest" ? "a guest" : `an ${m.role}`} of cell ${rec.name} and sees the cell read-only, which backend ${rec.backend} cannot enforce; give the cell backend sandbox or container`;
  }
  return undefined;
}

const what = (req: SessionRequest): string =>
  req.kind === "shell"
    ? `a shell (${req.command.join(" ")})`
    : req.command.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : JSON.stringify(w))).join(" ");

export interface OpenSession {
  id: string;
  rec: CellRecord;
  member: MemberRecord;
  who: string; // identity (host user …)
  spawn: SessionSpawn;
  startedAt: number;
}

// Who opens a session, as the ledger names them: the identity and the host user behind it.
interface Opener {
  id: string; // the session's id
  user: string; // hostUser()
  who: string; // identity (host user …)
}

// A refusal of a cell that exists is recorded (who tried what), then thrown.
async function refuse(opts: EngineOptions, l: Locked, req: SessionRequest, o: Opener, why: string): Promise<never> {
  const { now } = await resolveNow(l.paths, opts.now);
  await l.ledger.append({
    time: new Date(now).toISOString(),
    cell: req.cell,
    action: `${req.kind}-refused`,
    reason: `${o.who}: ${why}`,
    details: {
      identity: req.identity,
      hostUser: o.user,
      ...(req.kind === "exec" ? { command: req.command } : {}),
    },
  });
  throw new LazarusError("SESSION_REFUSED", why);
}

// The live cell's record; a cell in the graveyard is a recorded refusal, an unknown one an error.
async function liveCell(opts: EngineOptions, l: Locked, req: SessionRequest, o: Opener): Promise<CellRecord> {
  const cellDir = path.join(l.paths.cells, req.cell);
  const rec = await readUntrustedJson<CellRecord>(cellPaths(cellDir).record, CAPS.record, cellDir);
  if (rec) return rec;
  if (existsSync(path.join(l.paths.graveyard, req.cell)))
    await refuse(opts, l, req, o, `cell ${req.cell} is closed (in the graveyard); a ${req.kind} needs an active cell`);
  throw new LazarusError("NO_SUCH_CELL", `no live cell named ${req.cell} in ${l.paths.cells}; see lazarus status`);
}

// What the backend needs to run the session in the member's own view of the cell.
function sessionSpec(
  opts: EngineOptions,
  l: Locked,
  req: SessionRequest & { shell: string },
  o: Opener,
  rec: CellRecord,
  m: MemberRecord,
): SessionSpec {
  // no gateway token: that is a member's incarnation's, and a session is none
  return {
    ...memberSpec(rec, cellPaths(path.join(l.paths.cells, req.cell)), m, {
      command: req.command,
      env: m.env,
      configDir: path.resolve(opts.configDir),
      memberFilesInMeta: findBackend(rec.backend)?.memberFilesInMeta,
    }),
    sessionId: o.id,
    shell: req.shell,
    ...(req.tty ? { tty: req.tty } : {}),
  };
}

// The session's start, in the ledger: who opened what, as which role, through which backend.
async function recordStart(
  l: Locked,
  req: SessionRequest,
  o: Opener,
  rec: CellRecord,
  m: MemberRecord,
  time: string,
): Promise<void> {
  await l.ledger.append({
    time,
    cell: req.cell,
    action: req.kind,
    reason: `${o.who} ${req.kind === "shell" ? "opened" : "ran"} ${what(req)} as ${m.role}`,
    details: {
      session: o.id,
      identity: req.identity,
      role: m.role,
      hostUser: o.user,
      backend: rec.backend,
      ...(req.kind === "exec" ? { command: req.command } : { shell: req.shell }),
      tty: Boolean(req.tty),
    },
  });
}

// Under the locks: check the cell and the member (a refusal is recorded), let the backend prepare
// the spawn, and record the start.
async function openLocked(opts: EngineOptions, req: SessionRequest, o: Opener, l: Locked): Promise<OpenSession> {
  const rec = await liveCell(opts, l, req, o);
  const { now } = await resolveNow(l.paths, opts.now);
  const time = new Date(now).toISOString();
  const why = refusal(rec, req.identity, req.kind);
  if (why) await refuse(opts, l, req, o, why);
  const m = rec.members.find((x) => x.identity === req.identity) as MemberRecord;
  const shell = (req.shell ??= defaultShell(rec.backend));
  if (req.kind === "shell") req.command = [shell];
  const hostEnv = opts.hostEnv ?? process.env;
  const settings = opts.hostSettings ?? hostSettings(hostEnv);
  const backend = backends(path.dirname(l.paths.ledger), hostEnv, settings).get(rec.backend);
  const spawn = await backend.session(rec, sessionSpec(opts, l, { ...req, shell }, o, rec, m));
  await recordStart(l, req, o, rec, m, time);
  return { id: o.id, rec, member: m, who: o.who, spawn, startedAt: Date.now() };
}

// Check, record the start, and prepare the spawn. A refusal is recorded too, then thrown.
export async function openSession(opts: EngineOptions, req: SessionRequest): Promise<OpenSession> {
  const user = hostUser();
  const o: Opener = { id: randomBytes(6).toString("hex"), user, who: `${req.identity} (host user ${user})` };
  const command = `lazarus ${req.kind} ${req.cell}`;
  return underCellLock(opts, req.cell, command, opts.lockTimeoutMs ?? 0, () =>
    withStateLock(opts, command, (l) => openLocked(opts, req, o, l), { sweep: false }),
  );
}

export interface SessionEnd {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  error?: string; // it could not be started at all
}

const seconds = (ms: number): string => (ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`);

// A session's start and end are recorded under its cell's lock (then the state dir's, the lock
// order everywhere): never in the middle of an action on the cell, so a session a close ends is
// recorded as ended after that close.
async function underCellLock<T>(
  opts: EngineOptions,
  cell: string,
  command: string,
  waitMs: number,
  body: () => Promise<T>,
): Promise<T> {
  const lock = await lockCell(statePaths(opts.stateDir), cell, command, waitMs);
  try {
    return await body();
  } finally {
    await lock.release();
  }
}

// Record how the session ended. Waits for the lock longer than a start does: the session
// happened, and its end belongs in the ledger.
export async function closeSession(
  opts: EngineOptions,
  req: SessionRequest,
  s: OpenSession,
  end: SessionEnd,
): Promise<void> {
  const ms = Date.now() - s.startedAt;
  const how = end.error
    ? `could not start: ${end.error}`
    : end.signal
      ? `killed by ${end.signal}`
      : `exit ${end.exitCode}`;
  const waitMs = Math.max(opts.lockTimeoutMs ?? 0, 600_000);
  await underCellLock(opts, req.cell, `lazarus ${req.kind} ${req.cell} (recording its end)`, waitMs, () =>
    withStateLock(
      { ...opts, lockTimeoutMs: waitMs },
      `lazarus ${req.kind} ${req.cell} (recording its end)`,
      async ({ paths, ledger }) => {
        // with --now, the end is that time plus how long the session ran
        const { now } = await resolveNow(
          paths,
          opts.now === undefined ? undefined : new Date(Date.parse(opts.now) + ms).toISOString(),
        );
        await ledger.append({
          time: new Date(now).toISOString(),
          cell: req.cell,
          action: `${req.kind}-end`,
          reason: `${s.who}: ${req.kind === "shell" ? "shell" : what(req)} ended, ${how} after ${seconds(ms)}`,
          details: {
            session: s.id,
            identity: req.identity,
            hostUser: hostUser(),
            exitCode: end.exitCode,
            signal: end.signal,
            durationMs: ms,
            ...(end.error ? { error: end.error } : {}),
          },
        });
      },
      { sweep: false },
    ),
  );
}
