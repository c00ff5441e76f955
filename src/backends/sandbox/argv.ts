// The command lines that put a member in its sandbox. Pure: no I/O, so the view can be tested
// and printed. The chain is
//   sh (outer supervisor, root, outside the member's cgroup: records the exit code and OOM kills)
//   └ sh (joins the member's cgroup) → unshare -m (a private mount namespace) → sh (stages the
//     cell's dirs: bind-mounts them under STAGE, so the cell's uid needs no access to the state
//     dir's path) → setpriv (cell uid/gid, no caps, no_new_privs) → bwrap → the member's command
import path from "node:path";
import type { Role } from "../../config/types.js";

export const CELL_ROOT = "/cell"; // where the cell appears inside the sandbox
export const RUN_DIR = "/run/lazarus"; // read-only files Lazarus hands the member

// /etc files a member may see: name resolution, locales, certificates, dynamic linking. Never
// shadow, gshadow, ssh keys, sudoers or tool configs that may hold tokens (npmrc, gitconfig).
export const ETC_ALLOW = [
  "passwd", "group", "hosts", "hostname", "resolv.conf", "nsswitch.conf", "host.conf", "gai.conf",
  "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "alternatives", "ssl",
  "ca-certificates", "ca-certificates.conf", "mime.types", "protocols", "services", "os-release",
  "debian_version", "profile", "bash.bashrc", "inputrc", "environment", "magic", "locale.alias",
] as const;

// Top-level system paths: a symlink on usr-merged hosts, a directory elsewhere.
export type HostRoot = Record<string, { symlink: string } | "dir">;

export interface SandboxView {
  uid: number;
  gid: number;
  hostname: string; // the cell's name
  network: "none" | "host";
  cellDir: string; // host path of the cell
  role: Role;
  home: string; // the member's home directory name
  hostRoot: HostRoot; // /bin, /lib, ... as on this host
  extraBinds: { src: string; dest: string; dir: boolean }[]; // read-only: the operator's binds, files of the config dir the command names
  portfolioDir?: string; // host dir with portfolio.json, shown read-only at ~/.lazarus
  credentialsDir?: string; // host dir with credentials.json, shown read-only at /run/lazarus/secrets
  env: Record<string, string>;
  command: string[];
}

// Which parts of the cell a role sees, and how (spec §3: observers read, guests see only project/).
export function roleMounts(role: Role): { project: "rw" | "ro"; shared: "rw" | "ro" | "none"; credentials: boolean } {
  switch (role) {
    case "director":
    case "executor":
    case "substitute":
      return { project: "rw", shared: "rw", credentials: true };
    case "observer":
      return { project: "ro", shared: "ro", credentials: true };
    case "guest":
      return { project: "ro", shared: "none", credentials: false };
  }
}

export const sandboxHome = (home: string): string => path.posix.join(CELL_ROOT, "home", home);

// bwrap's arguments for one member.
export function bwrapArgs(v: SandboxView): string[] {
  const a: string[] = ["--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"];
  if (v.network === "none") a.push("--unshare-net");
  a.push("--die-with-parent", "--new-session", "--hostname", v.hostname, "--clearenv");
  for (const [k, val] of Object.entries(v.env).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))) a.push("--setenv", k, val);
  a.push("--ro-bind", "/usr", "/usr");
  for (const [name, kind] of Object.entries(v.hostRoot).sort()) {
    if (kind === "dir") a.push("--ro-bind", `/${name}`, `/${name}`);
    else a.push("--symlink", kind.symlink, `/${name}`);
  }
  for (const f of ETC_ALLOW) a.push("--ro-bind-try", `/etc/${f}`, `/etc/${f}`);
  a.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm", "--dir", "/run");
  const mounts = roleMounts(v.role);
  const host = (rel: string): string => path.join(v.cellDir, rel);
  a.push("--dir", CELL_ROOT);
  a.push(mounts.project === "rw" ? "--bind" : "--ro-bind", host("project"), `${CELL_ROOT}/project`);
  if (mounts.shared !== "none") a.push(mounts.shared === "rw" ? "--bind" : "--ro-bind", host("shared"), `${CELL_ROOT}/shared`);
  const home = sandboxHome(v.home);
  a.push("--bind", host(path.join("home", v.home)), home);
  if (v.portfolioDir) a.push("--ro-bind", v.portfolioDir, `${home}/.lazarus`);
  if (v.credentialsDir && mounts.credentials) a.push("--ro-bind", v.credentialsDir, `${RUN_DIR}/secrets`);
  for (const b of v.extraBinds) a.push("--ro-bind", b.src, b.dest);
  a.push("--remount-ro", "/", "--chdir", home, "--");
  a.push(...v.command);
  return a;
}

// setpriv's arguments: the cell's uid and gid, no supplementary groups, no capabilities at all.
export function setprivArgs(uid: number, gid: number): string[] {
  return ["--reuid", String(uid), "--regid", String(gid), "--clear-groups", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"];
}

// Where staged dirs appear: a tmpfs mounted here in the member's private mount namespace.
export const STAGE = "/run/lazarus-stage";

export interface StageMount {
  src: string; // host path (reachable by root only, as the state dir is)
  at: string; // path under STAGE
  dir: boolean;
}

// The view with every host path bwrap must open re-rooted under STAGE, and the mounts to make.
export function stageView(v: SandboxView): { view: SandboxView; mounts: StageMount[] } {
  const mounts: StageMount[] = [];
  const cell = (rel: string): string => {
    mounts.push({ src: path.join(v.cellDir, rel), at: path.posix.join("cell", rel), dir: true });
    return path.posix.join(STAGE, "cell", rel);
  };
  const mode = roleMounts(v.role);
  cell("project");
  if (mode.shared !== "none") cell("shared");
  cell(path.posix.join("home", v.home));
  const portfolioDir = v.portfolioDir ? (mounts.push({ src: v.portfolioDir, at: "portfolio", dir: true }), `${STAGE}/portfolio`) : undefined;
  const credentialsDir = v.credentialsDir && mode.credentials ? (mounts.push({ src: v.credentialsDir, at: "secrets", dir: true }), `${STAGE}/secrets`) : undefined;
  const extraBinds = v.extraBinds.map((b, i) => {
    mounts.push({ src: b.src, at: `extra/${i}`, dir: b.dir });
    return { ...b, src: `${STAGE}/extra/${i}` };
  });
  const view: SandboxView = { ...v, cellDir: `${STAGE}/cell`, extraBinds };
  if (portfolioDir) view.portfolioDir = portfolioDir;
  else delete view.portfolioDir;
  if (credentialsDir) view.credentialsDir = credentialsDir;
  else delete view.credentialsDir;
  return { view, mounts };
}

// Mounts a tmpfs on $LAZARUS_STAGE, bind-mounts each "d|f SRC AT" triple under it, then becomes
// the rest of its arguments (after "--").
export const STAGE_SCRIPT = [
  'mount -t tmpfs -o mode=0755,size=1m lazarus-stage "$LAZARUS_STAGE" || exit 126',
  'while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do',
  '  t="$LAZARUS_STAGE/$3"',
  '  if [ "$1" = d ]; then mkdir -p "$t"; else mkdir -p "${t%/*}" && : > "$t"; fi',
  '  mount --bind "$2" "$t" || exit 126',
  "  shift 3",
  "done",
  "shift",
  'exec "$@"',
].join("\n");

// unshare's and the stage script's arguments, ready to prefix the setpriv command.
export function stageArgs(mounts: StageMount[], unshare: string): string[] {
  return [unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", STAGE_SCRIPT, "lazarus-stage", ...mounts.flatMap((m) => [m.dir ? "d" : "f", m.src, m.at]), "--"];
}

// Joins the member's cgroup in every hierarchy, then becomes the rest of its arguments.
export const JOIN = 'for f in $LAZARUS_CGROUP_PROCS; do echo $$ > "$f" || exit 125; done; exec "$@"';

// The outer supervisor: runs the inner chain, then writes "<code> oom_kill=<n>" to the exit file
// with shell builtins only (it must not need to fork once the member runs).
export const OUTER = [
  'trap ":" HUP TERM',
  `/bin/sh -c '${JOIN}' lazarus-cgroup "$@"`,
  "code=$?",
  "oom=0",
  'if [ -n "$LAZARUS_OOM_FILE" ] && [ -r "$LAZARUS_OOM_FILE" ]; then while read -r k v; do [ "$k" = oom_kill ] && oom=$v; done < "$LAZARUS_OOM_FILE"; fi',
  'echo "$code oom_kill=$oom" > "$LAZARUS_EXIT_FILE"',
  'exit "$code"',
].join("\n");

export interface Tools {
  setpriv: string;
  bwrap: string;
  unshare: string;
}

// Everything after the cgroup join: staging, then the cell's uid, then bubblewrap.
function chain(v: SandboxView, tools: Tools): string[] {
  const staged = stageView(v);
  return [...stageArgs(staged.mounts, tools.unshare), tools.setpriv, ...setprivArgs(v.uid, v.gid), tools.bwrap, ...bwrapArgs(staged.view)];
}

// The whole argv for spawn("/bin/sh", ...) that starts a supervised member.
export function sandboxArgv(v: SandboxView, tools: Tools): string[] {
  return ["-c", OUTER, "lazarus-sandbox", ...chain(v, tools)];
}

// The argv for running one command in the member's view and cgroup, without a supervisor
// (lazarus verify; the caller waits for it).
export function execArgv(v: SandboxView, tools: Tools): string[] {
  return ["-c", JOIN, "lazarus-cgroup", ...chain(v, tools)];
}
