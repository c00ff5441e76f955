// The host's container engine (podman or docker), found once per process: which binary, and
// whether it answers. podman is preferred when both are installed; LAZARUS_CONTAINER_ENGINE picks.
import { spawnSync } from "node:child_process";
import { which } from "../../util/which.js";
import type { RunAsTools } from "../sandbox/run-as.js";

export type EngineKind = "podman" | "docker";

export interface ContainerEngine {
  kind?: EngineKind;
  bin?: string; // absolute path of its CLI
  runAs?: RunAsTools; // what restores and clears a cell's tree as its own uid
  problems: string[]; // why container cells cannot run here; empty when they can
}

const firstLine = (s: string): string => s.trim().split("\n").filter(Boolean).slice(-1)[0] ?? "";

let cached: ContainerEngine | undefined;

// Probe once: the engine's CLI and a daemon/runtime that answers `info`.
export function containerEngine(env: NodeJS.ProcessEnv = process.env): ContainerEngine {
  if (cached) return cached;
  const problems: string[] = [];
  const wanted = env.LAZARUS_CONTAINER_ENGINE;
  let kind: EngineKind | undefined;
  let bin: string | undefined;
  if (wanted !== undefined && wanted !== "podman" && wanted !== "docker") {
    problems.push(`LAZARUS_CONTAINER_ENGINE "${wanted}" is neither podman nor docker`);
  } else {
    for (const k of wanted ? [wanted as EngineKind] : (["podman", "docker"] as const)) {
      bin = which(k, env.PATH);
      if (bin) {
        kind = k;
        break;
      }
    }
    if (!bin)
      problems.push(
        wanted
          ? `${wanted} is not installed`
          : "no container engine is installed (apt-get install podman, or install docker)",
      );
  }
  if (kind && bin) {
    const format = kind === "podman" ? "{{.Host.OCIRuntime.Name}}" : "{{.ServerVersion}}";
    const k = spawnSync(bin, ["info", "--format", format], {
      encoding: "utf8",
      timeout: 30_000,
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (k.error || k.status !== 0)
      problems.push(
        `${kind} cannot reach a container engine here (${firstLine(String(k.stderr ?? "")) || k.error?.message || `exit ${k.status}`})`,
      );
  }
  const unshare = which("unshare", env.PATH, ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]);
  const setpriv = which("setpriv", env.PATH, ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]);
  if (!unshare || !setpriv)
    problems.push(
      "unshare and setpriv are needed to restore and clear a cell's files as its own uid (apt-get install util-linux)",
    );
  const runAs = unshare && setpriv ? { unshare, setpriv } : undefined;
  cached = { ...(kind ? { kind } : {}), ...(bin ? { bin } : {}), ...(runAs ? { runAs } : {}), problems };
  return cached;
}

// Whether the engine holds this image locally (Lazarus never pulls).
export function hasImage(engine: ContainerEngine, image: string): boolean {
  if (!engine.bin) return false;
  const r = spawnSync(engine.bin, ["image", "inspect", "--format", "{{.Id}}", image], {
    encoding: "utf8",
    timeout: 30_000,
    stdio: ["ignore", "pipe", "pipe"],
  });
  return r.status === 0;
}
