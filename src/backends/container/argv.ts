// The engine's command line for one member. Pure: no I/O, so the view can be tested and printed.
// The cell's dirs are bound in by role exactly as the sandbox backend shows them (see
// ../sandbox/argv.ts roleMounts): project/shared rw or ro, the member's own home rw, other homes
// absent, credentials read-only at /run/lazarus/secrets (never for guests).
import path from "node:path";
import type { ContainerSpec, Resources, Role } from "../../config/types.js";
import { CELL_ROOT, RUN_DIR, roleMounts, sandboxHome } from "../sandbox/argv.js";
import { parseContainerUser } from "./user.js";

export const LABEL_CELL = "lazarus.cell";
export const LABEL_CELL_UID = "lazarus.cell.uid"; // the cell incarnation: names repeat across state dirs
export const LABEL_MEMBER = "lazarus.member";
export const LABEL_SPAWN = "lazarus.spawn";

// Every container has a pid limit, declared or not, as every sandboxed member has.
export const DEFAULT_PIDS = 1024;

export { containerName } from "./name.js";

export interface ContainerView {
  name: string;
  cell: string;
  cellUid: string; // the record's incarnation id
  identity: string;
  spawnId: string;
  container: ContainerSpec;
  uid: number; // the cell's own uid (used when container.user is not set)
  gid: number;
  network: "none" | "host" | { netns: string }; // netns: the member's namespace file (bridge/netns.ts), made beforehand
  role: Role;
  cellDir: string; // host path of the cell
  home: string; // the member's home directory name
  portfolioDir?: string; // host dir with portfolio.json, read-only at ~/.lazarus
  credentialsDir: string; // host dir with credentials.json
  resources: Resources;
  env: Record<string, string>; // as the member sees it (in-container paths)
  command: string[];
}

// `<engine> run` arguments (attached: the supervisor waits for it and reads the exit state).
export function runArgs(v: ContainerView): string[] {
  const a = ["run", "--name", v.name, "--init", "--pull", "never"];
  a.push(
    "--label",
    `${LABEL_CELL}=${v.cell}`,
    "--label",
    `${LABEL_CELL_UID}=${v.cellUid}`,
    "--label",
    `${LABEL_MEMBER}=${v.identity}`,
    "--label",
    `${LABEL_SPAWN}=${v.spawnId}`,
  );
  a.push("--network", typeof v.network === "object" ? `ns:${v.network.netns}` : v.network);
  if (v.network !== "host") a.push("--hostname", v.cell);
  const user = v.container.user ? parseContainerUser(v.container.user) : { uid: v.uid, gid: v.gid };
  a.push("--user", `${user.uid}:${user.gid}`, "--cap-drop", "ALL", "--security-opt", "no-new-privileges");
  if (v.container.readOnlyRootfs) a.push("--read-only");
  a.push("--tmpfs", "/tmp:rw,nosuid,nodev,mode=1777");
  const r = v.resources;
  if (r.memoryBytes !== undefined) a.push("--memory", String(r.memoryBytes), "--memory-swap", String(r.memoryBytes));
  a.push("--pids-limit", String(r.pids ?? DEFAULT_PIDS));
  if (r.cpu !== undefined) a.push("--cpus", String(r.cpu));
  const mounts = roleMounts(v.role);
  const host = (rel: string): string => path.join(v.cellDir, rel);
  const bind = (src: string, dest: string, ro: boolean): void => {
    a.push("--mount", `type=bind,source=${src},destination=${dest}${ro ? ",readonly" : ""}`);
  };
  bind(host("project"), `${CELL_ROOT}/project`, mounts.project === "ro");
  if (mounts.shared !== "none") bind(host("shared"), `${CELL_ROOT}/shared`, mounts.shared === "ro");
  const home = sandboxHome(v.home);
  bind(host(path.join("home", v.home)), home, false);
  if (v.portfolioDir) bind(v.portfolioDir, `${home}/.lazarus`, true);
  if (mounts.credentials) bind(v.credentialsDir, `${RUN_DIR}/secrets`, true);
  a.push("--workdir", home);
  for (const [k, val] of Object.entries(v.env).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
    a.push("--env", `${k}=${val}`);
  a.push(v.container.image, ...v.command);
  return a;
}

// The supervisor: runs `<engine> run …` attached, then records "<code> oom_kill=<0|1>" from the
// engine's view of the container (the exit code, and whether its memory limit killed it) and
// removes the container. $1 is the engine, $LAZARUS_CONTAINER the container's name. A member with
// a namespace file (egress, gateway) joins it with --network ns:FILE; the file is made before and
// outlives the container (bridge/netns.ts).
export const SUPERVISOR = [
  'trap ":" HUP TERM',
  'engine="$1"',
  '"$@"',
  "code=$?",
  'state=$("$engine" inspect --format "{{.State.ExitCode}} {{.State.OOMKilled}}" "$LAZARUS_CONTAINER" 2>/dev/null)',
  "oom=0",
  'case "$state" in',
  '  *" true") oom=1; code=${state%% *} ;;',
  '  [0-9]*" false") code=${state%% *} ;;',
  "esac",
  'echo "$code oom_kill=$oom" > "$LAZARUS_EXIT_FILE.tmp" && mv -f "$LAZARUS_EXIT_FILE.tmp" "$LAZARUS_EXIT_FILE"',
  '"$engine" rm -f "$LAZARUS_CONTAINER" >/dev/null 2>&1',
  'exit "$code"',
].join("\n");
