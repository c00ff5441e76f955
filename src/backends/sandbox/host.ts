// What the sandbox backend needs from this host, found once per process: bubblewrap, setpriv,
// root, user namespaces, cgroups. Each gap is said in words with what to do.
import { execFileSync } from "node:child_process";
import { chmodSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { detectCgroups, type CgroupMode } from "./cgroup.js";
import { RUN_ROOT, STAGE, type HostRoot, type Tools } from "./argv.js";
import { which } from "../../util/which.js";

// A host tool: the PATH first, then the usual places of system tools.
const tool = (cmd: string): string | undefined =>
  which(cmd, process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]);

export interface SandboxHost {
  tools?: Tools; // present when nothing is missing
  bwrap?: string;
  setpriv?: string;
  cgroups?: CgroupMode;
  hostRoot: HostRoot;
  problems: string[]; // why sandbox cells cannot run here; empty when they can
}

function readNumber(file: string): number | undefined {
  try {
    return Number(readFileSync(file, "utf8").trim());
  } catch {
    return undefined;
  }
}

// /bin, /sbin, /lib* as this host has them.
export function hostRoot(): HostRoot {
  const out: HostRoot = {};
  for (const name of ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]) {
    try {
      const st = lstatSync(`/${name}`);
      if (st.isSymbolicLink()) out[name] = { symlink: readlinkSync(`/${name}`) };
      else if (st.isDirectory()) out[name] = "dir";
    } catch {
      // absent on this host
    }
  }
  return out;
}

// Lazarus's run dir must be traversable by every cell uid (staging and the views live under it).
// An older Lazarus could make it 0700 when a member's network namespace came first (a recursive
// mkdir gives the parents the mode of netns/): such a dir of root's is opened up again here.
function traversable(dir: string): void {
  const st = statSync(dir);
  if (st.uid === 0 && (st.mode & 0o111) !== 0o111) chmodSync(dir, (st.mode & 0o7777) | 0o111);
}

let cached: SandboxHost | undefined;

// Probe once: tools, privileges, and a real bubblewrap start as an unprivileged uid.
export function sandboxHost(): SandboxHost {
  if (cached) return cached;
  const problems: string[] = [];
  const bwrap = tool("bwrap");
  const setpriv = tool("setpriv");
  const unshare = tool("unshare");
  const nsenter = tool("nsenter");
  const mount = tool("mount");
  if (process.platform !== "linux") problems.push("backend sandbox needs Linux");
  if (!bwrap) problems.push("bubblewrap is not installed (apt-get install bubblewrap)");
  if (!setpriv) problems.push("setpriv is not installed (apt-get install util-linux)");
  if (!unshare) problems.push("unshare is not installed (apt-get install util-linux)");
  if (!nsenter) problems.push("nsenter is not installed (apt-get install util-linux)");
  if (!mount) problems.push("mount is not installed (apt-get install mount)");
  if (process.getuid?.() !== 0) problems.push("Lazarus must run as root to start members as per-cell uids");
  if (readNumber("/proc/sys/user/max_user_namespaces") === 0)
    problems.push("user namespaces are disabled (sysctl user.max_user_namespaces=0); raise it");
  if (readNumber("/proc/sys/kernel/unprivileged_userns_clone") === 0)
    problems.push("unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=1)");
  const cgroups = detectCgroups();
  if (!cgroups)
    problems.push(
      "no cgroup filesystem under /sys/fs/cgroup; mount cgroup2 or the v1 memory, pids, cpu and freezer controllers",
    );
  if (problems.length === 0 && bwrap && setpriv) {
    try {
      execFileSync(
        setpriv,
        [
          "--reuid",
          "65534",
          "--regid",
          "65534",
          "--clear-groups",
          "--no-new-privs",
          "--",
          bwrap,
          "--unshare-all",
          "--unshare-user",
          "--disable-userns",
          "--ro-bind",
          "/",
          "/",
          "--",
          "/bin/true",
        ],
        { stdio: "pipe", timeout: 10_000 },
      );
    } catch (err) {
      const stderr = String((err as { stderr?: Buffer }).stderr ?? "").trim();
      if (/Unknown option --disable-userns/.test(stderr))
        problems.push(
          `bubblewrap is too old here (${stderr}): members run with --disable-userns, which needs bubblewrap 0.8.0 or later`,
        );
      else
        problems.push(
          `bubblewrap cannot create namespaces as an unprivileged user here (${stderr || "failed"}); enable unprivileged user namespaces`,
        );
    }
  }
  if (problems.length === 0) {
    try {
      mkdirSync(STAGE, { recursive: true, mode: 0o755 });
      traversable(RUN_ROOT);
    } catch (err) {
      problems.push(`cannot create ${STAGE}: ${(err as Error).message}`);
    }
  }
  const tools =
    problems.length === 0 && bwrap && setpriv && unshare && nsenter ? { bwrap, setpriv, unshare, nsenter } : undefined;
  cached = {
    ...(tools ? { tools } : {}),
    ...(bwrap ? { bwrap } : {}),
    ...(setpriv ? { setpriv } : {}),
    ...(cgroups ? { cgroups } : {}),
    hostRoot: hostRoot(),
    problems,
  };
  return cached;
}
