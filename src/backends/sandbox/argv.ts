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
export const CONFIG_INSIDE = `${RUN_DIR}/config`; // where the config-dir files a command names appear

// /etc files a member may see: name resolution, locales, certificates, dynamic linking. Never
// shadow, gshadow, ssh keys, sudoers or tool configs that may hold tokens (npmrc, gitconfig).
export const ETC_ALLOW = [
  "passwd",
  "group",
  "hosts",
  "hostname",
  "resolv.conf",
  "nsswitch.conf",
  "host.conf",
  "gai.conf",
  "ld.so.cache",
  "ld.so.conf",
  "ld.so.conf.d",
  "localtime",
  "timezone",
  "alternatives",
  "ssl",
  "ca-certificates",
  "ca-certificates.conf",
  "mime.types",
  "protocols",
  "services",
  "os-release",
  "debian_version",
  "profile",
  "bash.bashrc",
  "inputrc",
  "environment",
  "magic",
  "locale.alias",
] as const;

// Top-level system paths: a symlink on usr-merged hosts, a directory elsewhere.
export type HostRoot = Record<string, { symlink: string } | "dir">;

export interface SandboxView {
  uid: number;
  gid: number;
  hostname: string; // the cell's name
  network: "none" | "host" | { netns: string }; // netns: a namespace file it joins (nsenter), made beforehand
  cellDir: string; // host path of the cell
  role: Role;
  home: string; // the member's home directory name
  hostRoot: HostRoot; // /bin, /lib, ... as on this host
  // read-only: the operator's binds, files of the config dir the command names
  extraBinds: { src: string; dest: string; dir: boolean }[];
  portfolioDir?: string; // host dir with portfolio.json, shown read-only at ~/.lazarus
  credentialsDir?: string; // host dir with credentials.json, shown read-only at /run/lazarus/secrets
  configFilesDir?: string; // host dir with copies of the config-dir files the command names, read-only at CONFIG_INSIDE
  etcDir?: string; // a copy of the allowed /etc files, bound as one (else each file is bound)
  env: Record<string, string>;
  command: string[];
  tmpfsBytes: number; // the size of /tmp and of /dev/shm
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
  // --disable-userns (bubblewrap 0.8.0): no user namespace of its own for the member (where it
  // would hold every capability, the door to most kernel attack surface).
  const a: string[] = [
    "--unshare-user",
    "--disable-userns",
    "--unshare-ipc",
    "--unshare-pid",
    "--unshare-uts",
    "--unshare-cgroup-try",
  ];
  if (v.network === "none") a.push("--unshare-net");
  a.push("--die-with-parent", "--new-session", "--hostname", v.hostname, "--clearenv");
  for (const [k, val] of Object.entries(v.env).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
    a.push("--setenv", k, val);
  a.push("--ro-bind", "/usr", "/usr");
  for (const [name, kind] of Object.entries(v.hostRoot).sort()) {
    if (kind === "dir") a.push("--ro-bind", `/${name}`, `/${name}`);
    else a.push("--symlink", kind.symlink, `/${name}`);
  }
  if (v.etcDir) a.push("--ro-bind", v.etcDir, "/etc");
  else for (const f of ETC_ALLOW) a.push("--ro-bind-try", `/etc/${f}`, `/etc/${f}`);
  const size = String(v.tmpfsBytes);
  a.push(
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--size",
    size,
    "--tmpfs",
    "/tmp",
    "--size",
    size,
    "--tmpfs",
    "/dev/shm",
    "--dir",
    "/run",
  );
  const mounts = roleMounts(v.role);
  const host = (rel: string): string => path.join(v.cellDir, rel);
  a.push("--dir", CELL_ROOT);
  a.push(mounts.project === "rw" ? "--bind" : "--ro-bind", host("project"), `${CELL_ROOT}/project`);
  if (mounts.shared !== "none")
    a.push(mounts.shared === "rw" ? "--bind" : "--ro-bind", host("shared"), `${CELL_ROOT}/shared`);
  const home = sandboxHome(v.home);
  a.push("--bind", host(path.join("home", v.home)), home);
  if (v.portfolioDir) a.push("--ro-bind", v.portfolioDir, `${home}/.lazarus`);
  if (v.credentialsDir && mounts.credentials) a.push("--ro-bind", v.credentialsDir, `${RUN_DIR}/secrets`);
  if (v.configFilesDir) a.push("--ro-bind", v.configFilesDir, CONFIG_INSIDE);
  for (const b of v.extraBinds) a.push("--ro-bind", b.src, b.dest);
  a.push("--remount-ro", "/", "--chdir", home, "--");
  a.push(...v.command);
  return a;
}

// setpriv's arguments: the cell's uid and gid, no supplementary groups, no capabilities at all.
export function setprivArgs(uid: number, gid: number): string[] {
  return [
    "--reuid",
    String(uid),
    "--regid",
    String(gid),
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
    "--",
  ];
}

// Lazarus's own host dirs for sandboxes (world-traversable, as /run is): the /etc view and the
// mount points of staging.
export const RUN_ROOT = "/run/lazarus";
export const STAGE = `${RUN_ROOT}/stage`;

export interface StageMount {
  src: string; // host path the cell's uid cannot reach (an ancestor is not traversable)
  at: string; // its mount point under STAGE: d/<n> for a dir, f/<n> for a file
  dir: boolean;
}

// The view with every host path the cell's uid cannot reach re-rooted under STAGE (the cell dir
// as one bind), and the mounts to make in a private mount namespace before bwrap runs.
export function stageView(
  v: SandboxView,
  reachable: (p: string) => boolean,
): { view: SandboxView; mounts: StageMount[] } {
  const mounts: StageMount[] = [];
  const stage = (src: string, dir: boolean): string => {
    if (reachable(src)) return src;
    const at = `${dir ? "d" : "f"}/${mounts.length}`;
    mounts.push({ src, at, dir });
    return `${STAGE}/${at}`;
  };
  const cellDir = stage(v.cellDir, true);
  // a dir inside the cell goes with the staged cell dir; any other is staged on its own
  const place = (p: string): string =>
    p.startsWith(`${v.cellDir}/`) ? `${cellDir}${p.slice(v.cellDir.length)}` : stage(p, true);
  const view: SandboxView = {
    ...v,
    cellDir,
    extraBinds: v.extraBinds.map((b) => ({ ...b, src: stage(b.src, b.dir) })),
  };
  if (v.etcDir) view.etcDir = stage(v.etcDir, true);
  if (v.portfolioDir) view.portfolioDir = place(v.portfolioDir);
  if (v.credentialsDir) view.credentialsDir = place(v.credentialsDir);
  if (v.configFilesDir) view.configFilesDir = place(v.configFilesDir);
  return { view, mounts };
}

// Bind-mounts each "SRC AT" pair onto $LAZARUS_STAGE/AT (with what is mounted under SRC: a cell's
// disk image binds), then becomes the rest of its arguments.
export const STAGE_SCRIPT =
  'while [ "$1" != "--" ]; do mount --rbind "$1" "$LAZARUS_STAGE/$2" || exit 126; shift 2; done; shift; exec "$@"';

// Mounts a tmpfs on $LAZARUS_STAGE/<first argument>, bind-mounts each "SRC NAME" pair into it as
// NAME, then becomes the rest of its arguments: a directory of the cell's own dirs only, which the
// cell's uid can open (tar opens the directory it extracts into).
export const LAYOUT_STAGE_SCRIPT = [
  't="$LAZARUS_STAGE/$1"; shift',
  'mount -t tmpfs -o mode=0755,size=64k lazarus-stage "$t" || exit 126',
  'while [ "$1" != "--" ]; do mkdir "$t/$2" && mount --rbind "$1" "$t/$2" || exit 126; shift 2; done',
  "shift",
  'exec "$@"',
].join("\n");

// Joins the member's cgroup in every hierarchy (writing 0 moves the writer itself).
export const JOIN = 'for f in $LAZARUS_CGROUP_PROCS; do echo 0 > "$f" || exit 125; done';

// The outer supervisor: runs the inner chain, then writes "<code> oom_kill=<n>" to the exit file
// with shell builtins only (it must not need to fork once the member runs).
export const OUTER = [
  'trap ":" HUP TERM',
  `( ${JOIN}; exec "$@" )`,
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
  nsenter?: string; // needed for a view with a namespace file
}

// Staging (only when some path is out of the uid's reach), then the cell's uid, then bubblewrap.
function chain(v: SandboxView, tools: Tools, reachable: (p: string) => boolean): string[] {
  const staged = stageView(v, reachable);
  return [
    ...netnsPrefix(v, tools),
    ...stagePrefix(staged.mounts, tools.unshare),
    tools.setpriv,
    ...setprivArgs(v.uid, v.gid),
    tools.bwrap,
    ...bwrapArgs(staged.view),
  ];
}

// nsenter into the member's network namespace file (bubblewrap then joins it: no --unshare-net),
// or nothing for a member with its own (--unshare-net) or the host's network.
export function netnsPrefix(v: Pick<SandboxView, "network">, tools: Pick<Tools, "nsenter">): string[] {
  if (typeof v.network !== "object") return [];
  return [tools.nsenter ?? "nsenter", `--net=${v.network.netns}`, "--"];
}

// unshare and the stage script, or nothing when there is nothing to stage.
export function stagePrefix(mounts: StageMount[], unshare: string): string[] {
  if (mounts.length === 0) return [];
  return [
    unshare,
    "--mount",
    "--propagation",
    "private",
    "/bin/sh",
    "-c",
    STAGE_SCRIPT,
    "lazarus-stage",
    ...mounts.flatMap((m) => [m.src, m.at]),
    "--",
  ];
}

// The whole argv for spawn("/bin/sh", ...) that starts a supervised member.
export function sandboxArgv(v: SandboxView, tools: Tools, reachable: (p: string) => boolean): string[] {
  return ["-c", OUTER, "lazarus-sandbox", ...chain(v, tools, reachable)];
}

// The argv for running one command in the member's view and cgroup, without a supervisor
// (lazarus verify; the caller waits for it).
export function execArgv(v: SandboxView, tools: Tools, reachable: (p: string) => boolean): string[] {
  return ["-c", `${JOIN}; exec "$@"`, "lazarus-cgroup", ...chain(v, tools, reachable)];
}
