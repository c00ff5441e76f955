// The comments Lazarus posts on a cell's issue: pure functions of what the outbox entry holds.
// Each body starts with a hidden marker naming the cell, its incarnation and the kind, by which a
// retry finds its own comment again instead of posting a second one. Text that came from members
// (commit subjects, file names) is shown in code spans with "<" and backticks neutralised, so it
// can neither mention anyone, render HTML, nor forge a marker.

export type CommentKind = "spawn" | "close";

export interface RosterRow {
  identity: string;
  role: string;
  joinedAt: string;
  leftAt?: string;
}

export interface SpawnFacts {
  cell: string;
  project: string;
  life: string; // the incarnation
  backend: string;
  owner: string;
  createdAt: string;
  members: RosterRow[];
}

// The incarnation's push (spec.push): where, the commit last pushed, how the last push went.
export interface PushFacts {
  branch: string;
  url: string; // the operator's (never the token)
  state: string; // pushed, nothing to push, waiting, rejected (not forced), failed
  sha?: string; // the commit last pushed
  atClose?: boolean; // the push at close (else the last checkpoint's)
}

export interface CloseFacts {
  cell: string;
  project: string;
  life: string;
  backend: string;
  startedAt: string; // when this incarnation became active (or was created)
  closedAt: string;
  outcome: string;
  members: { identity: string; role: string; status: string }[];
  branch?: string;
  commits: { sha: string; subject: string }[]; // newest first, as git log lists them
  files: string[];
  filesFrom: "git" | "mtime";
  checkpoints: string[];
  push?: PushFacts;
}

export type Facts = { kind: "spawn"; spawn: SpawnFacts } | { kind: "close"; close: CloseFacts };

const MAX_COMMITS = 50;
const MAX_FILES = 100;
const MAX_TEXT = 200;

export function marker(kind: CommentKind, cell: string, life: string): string {
  return `<!-- lazarus:cell=${cell} uid=${life} kind=${kind} -->`;
}

// Whether a comment body is the one with this marker (it is always the first line).
export function hasMarker(body: string, kind: CommentKind, cell: string, life: string): boolean {
  return body.startsWith(marker(kind, cell, life));
}

// Member-written text as an inert code span.
export function code(text: string): string {
  const clean = [...text]
    .map((ch) => (ch < " " || ch === "\u007f" ? " " : ch === "`" ? "'" : ch === "<" ? "‹" : ch))
    .join("")
    .slice(0, MAX_TEXT);
  return `\`${clean}\``;
}

// Lazarus's own names (identities, roles, backends): plain, but never markup.
const plain = (text: string): string => text.replace(/[<>`|@\\*_[\]]/g, (c) => `\\${c}`);

export function duration(ms: number): string {
  if (!(ms >= 0)) return "unknown";
  const m = Math.round(ms / 60_000);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h}h ${m % 60}m` : `${h}h`;
}

export function renderSpawn(f: SpawnFacts): string {
  const rows = f.members.map(
    (m) =>
      `| ${plain(m.identity)} | ${plain(m.role)} | ${m.joinedAt} | ${m.leftAt ? `left ${m.leftAt}` : "in the cell"} |`,
  );
  return [
    marker("spawn", f.cell, f.life),
    `### Lazarus cell \`${f.cell}\` spawned`,
    "",
    `- project: ${plain(f.project)}`,
    `- backend: ${plain(f.backend)}`,
    `- owner: ${plain(f.owner)}`,
    `- created: ${f.createdAt}`,
    `- incarnation: \`${f.life}\``,
    "",
    "| member | role | joined | now |",
    "| --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}

function commitLines(f: CloseFacts): string[] {
  if (f.commits.length === 0) return ["- commits: none"];
  const oldest = f.commits[f.commits.length - 1] as { sha: string };
  const newest = f.commits[0] as { sha: string };
  const range =
    f.commits.length === 1
      ? `\`${newest.sha.slice(0, 12)}\``
      : `\`${oldest.sha.slice(0, 12)}^..${newest.sha.slice(0, 12)}\``;
  const shown = f.commits.slice(0, MAX_COMMITS).map((c) => `  - \`${c.sha.slice(0, 12)}\` ${code(c.subject)}`);
  const more = f.commits.length > MAX_COMMITS ? [`  - … and ${f.commits.length - MAX_COMMITS} more`] : [];
  const on = f.branch ? ` on ${code(f.branch)}` : "";
  return [`- commits${on}: ${f.commits.length} (${range})`, ...shown, ...more];
}

function pushLines(f: CloseFacts): string[] {
  const p = f.push;
  if (!p) return [];
  const at = p.sha ? ` at \`${p.sha.slice(0, 12)}\`` : "";
  if (p.state === "pushed")
    return [`- pushed: ${code(p.branch)}${at} to ${plain(p.url)}${p.atClose ? "" : " (last checkpoint)"}`];
  const last = p.sha ? `; last pushed${at}` : "";
  return [`- push of ${code(p.branch)} to ${plain(p.url)}: ${plain(p.state)}${last}`];
}

function fileLines(f: CloseFacts): string[] {
  if (f.files.length === 0) return ["- files touched: none"];
  const how = f.filesFrom === "git" ? "" : " (by modification time)";
  const shown = f.files.slice(0, MAX_FILES).map((p) => `  - ${code(p)}`);
  const more = f.files.length > MAX_FILES ? [`  - … and ${f.files.length - MAX_FILES} more`] : [];
  return [`- files touched${how}: ${f.files.length}`, ...shown, ...more];
}

export function renderClose(f: CloseFacts): string {
  const members = f.members.map((m) => `${plain(m.identity)} (${plain(m.role)}, ${plain(m.status)})`).join(", ");
  return [
    marker("close", f.cell, f.life),
    `### Lazarus cell \`${f.cell}\` closed`,
    "",
    `- outcome: ${plain(f.outcome)}`,
    `- project: ${plain(f.project)}`,
    `- backend: ${plain(f.backend)}`,
    `- active: ${f.startedAt} → ${f.closedAt} (${duration(Date.parse(f.closedAt) - Date.parse(f.startedAt))})`,
    `- incarnation: \`${f.life}\``,
    `- members: ${members || "none"}`,
    ...commitLines(f),
    ...pushLines(f),
    ...fileLines(f),
    `- checkpoints: ${f.checkpoints.length ? f.checkpoints.map(code).join(", ") : "none"}`,
    "",
  ].join("\n");
}

export function render(f: Facts): string {
  return f.kind === "spawn" ? renderSpawn(f.spawn) : renderClose(f.close);
}
