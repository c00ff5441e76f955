// `lazarus verify`: a live proof, cell by cell and member by member, that the invariants of spec
// §2 hold — by probing from inside each member's own sandbox or container and checking the host
// side too.
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { CellRecord } from "../cells/record.js";
import { cellPaths, type StatePaths } from "../cells/layout.js";
import { NO_CONFIG_DIR, memberSpec } from "../backends/backend.js";
import type { HostSettings } from "../host/settings.js";
import { ALLOWED, ALLOWED_PREFIX } from "../backends/env.js";
import { hostLimits } from "../host/limits.js";
import { backendSpec, backends, type Backends } from "../backends/registry.js";
import type { VerifyPlan } from "../backends/contract.js";
import { verifyLedger } from "../ledger/ledger.js";
import { formatBytes } from "../config/quantity.js";
import { observe, type ObservedCell } from "../observe/observe.js";
import { LazarusError } from "../util/errors.js";
import { PROBE, parseProbe, type ProbeLine } from "./probe.js";
import { EGRESS_CHECKS, EGRESS_PROBE, listedTarget } from "./egress-probe.js";
import { proxyEnv } from "../egress/member.js";
import { MEMBER_PORT } from "../egress/state.js";

export { INVARIANTS, type CellReport, type Check, type Invariant } from "./types.js";
import type { CellReport, Check, Invariant } from "./types.js";

const PROBE_CHECKS: Record<string, { invariant: Invariant; label: string }> = {
  "write-outside": { invariant: "I1", label: "write outside the cell" },
  "read-sibling": { invariant: "I1", label: "read a sibling cell" },
  "read-other-home": { invariant: "I1", label: "read another member's home" },
  "read-state-dir": { invariant: "I2", label: "read the state dir or another cell's credentials" },
  "see-host-process": { invariant: "I3", label: "see a host or sibling process" },
  "signal-host-process": { invariant: "I3", label: "signal a host or sibling process" },
  "pid-limit": { invariant: "I3", label: "exceed the pid limit" },
  "host-loopback": { invariant: "I4", label: "reach a server on the host's loopback" },
  "tmp-residue": { invariant: "I5", label: "find residue in /tmp or /dev/shm" },
};

// Variables Lazarus or the shell sets in every member (values of the member's own, not the host's).
const SET_BY_LAZARUS = new Set(["HOME", "HERMES_HOME", "TMPDIR", "LAZARUS_PORTFOLIO", "PWD", "OLDPWD", "SHLVL", "_"]);

// A cell with a disk quota: its image in place (members then get ENOSPC at the quota, never
// writing to the host's filesystem), as observed.
function diskCheck(cell: ObservedCell, bytes: number): Check {
  const mounted = cell.disk?.mounted === true;
  return {
    invariant: "I1",
    check: "disk quota",
    ok: mounted,
    detail: mounted
      ? `project/, shared/ and home/ on the cell's own ${formatBytes(bytes)} image (${formatBytes(cell.disk?.avail ?? 0)} free)`
      : `the cell's ${formatBytes(bytes)} image is not mounted; lazarus apply mounts it again before members start`,
  };
}

type Member = CellRecord["members"][number];

// Runs the probe in a member's own view (the sandbox: bubblewrap as the cell's uid in the
// member's cgroup; container: a fresh container with the member's mounts, uid and limits).
type Runner = (
  rec: CellRecord,
  cellDir: string,
  m: Member,
  command: string[],
  env: Record<string, string>,
  timeoutMs?: number,
) => Promise<{ exitCode: number | undefined; stdout: string; stderr: string }>;

// How long a member's probe may run: it forks past the member's pid limit and reads /proc for
// each process, which on a loaded host takes many times what it takes on an idle one (a 1024-pid
// limit: over a minute at load 20 on 2 cores). The bound is for a probe that hangs, not a clock on
// a slow one: ended early, it would report ✗ for the checks it had not reached.
export function probeTimeoutMs(forks: number): number {
  return 60_000 + forks * 100;
}

interface Context {
  paths: StatePaths;
  stateRoot: string;
  live: ObservedCell[];
  port: number;
  connections: () => number;
  hostEnvNames: string[];
  mountPoints: string[];
}

// What a backend's probe needs to know of it (BackendSpec.verify).
type Probe = Extract<VerifyPlan, { probe: unknown }>["probe"];

// What the probe is told of the world around the member: where it must not write or read, which
// pids it must not see, the host's loopback port it must not reach, its pid limit.
function probeEnv(ctx: Context, cell: ObservedCell, rec: CellRecord, m: Member, token: string, outside: string[]) {
  const others = ctx.live.filter((c) => c.name !== cell.name);
  const pidsMax = m.resources?.pids ?? hostLimits(process.env).defaultPids;
  return {
    LZ_TOKEN: token,
    LZ_OUTSIDE: outside.join(" "),
    LZ_SIBLINGS: others.flatMap((c) => [c.dir, path.join(c.dir, "project")]).join(" "),
    LZ_SIBLING_CREDS: others.map((c) => path.join(c.dir, ".lazarus", "secrets", "credentials.json")).join(" "),
    LZ_STATE: ctx.stateRoot,
    LZ_OTHER_HOMES: rec.members
      .filter((x) => x.home !== m.home)
      .map((x) => x.home)
      .join(" "),
    LZ_HOST_PIDS: [
      process.pid,
      ...others.flatMap((c) => c.members.filter((x) => x.alive && x.pid).map((x) => x.pid as number)),
    ].join(" "),
    LZ_PORT: String(ctx.port),
    LZ_FORKS: String(pidsMax + 4),
    LZ_PIDS_MAX: String(pidsMax),
    // the first component of operator binds under /tmp or /dev/shm: bubblewrap's mount points
    LZ_MOUNT_POINTS: ctx.mountPoints.join(" "),
  };
}

// I2: the variable names the member sees hold no host variable beyond the allowlist.
function hostEnvCheck(ctx: Context, rec: CellRecord, m: Member, probe: Probe, names: string): Check {
  const allowed = (k: string): boolean =>
    (rec.network === "egress" && k in proxyEnv()) ||
    ALLOWED.has(k) ||
    k.startsWith(ALLOWED_PREFIX) ||
    k.startsWith("CELL_") ||
    k.startsWith("LZ_") ||
    SET_BY_LAZARUS.has(k) ||
    probe.engineEnv.includes(k) ||
    k in m.env;
  const leaked = names.split(" ").filter((k) => k && ctx.hostEnvNames.includes(k) && !allowed(k));
  return {
    invariant: "I2",
    check: "host environment",
    member: m.identity,
    ok: leaked.length === 0,
    detail: leaked.length ? `host variables passed: ${leaked.join(", ")}` : "no host variable beyond the allowlist",
  };
}

// What the probe tried from inside, checked from the host too: a write outside must not have
// landed (what did is removed), the host's loopback server must have seen no connection.
interface HostSide {
  token: string;
  outside: string[];
  connectionsBefore: number;
}

// One check the probe reported, judged with the host's side of it; undefined for a line that is
// no check of ours, or the loopback check of a cell on the host's network.
function reportedCheck(ctx: Context, rec: CellRecord, m: Member, l: ProbeLine, host: HostSide): Check | undefined {
  const meta = PROBE_CHECKS[l.check];
  if (!meta) return undefined;
  let ok = l.result === "ok";
  let detail = l.detail;
  if (l.check === "write-outside") {
    const landed = host.outside.map((d) => path.join(d, `.lazarus-verify-${host.token}`)).filter((f) => existsSync(f));
    for (const f of landed) rmSync(f, { force: true });
    [ok, detail] = landed.length
      ? [false, `files appeared on the host: ${landed.join(", ")}`]
      : [true, `no write reached the host (tried ${host.outside.join(", ")})`];
  }
  if (l.check === "host-loopback" && ctx.connections() > host.connectionsBefore)
    [ok, detail] = [false, `the host's 127.0.0.1:${ctx.port} accepted a connection`];
  if (l.check === "host-loopback" && rec.network === "host") return undefined;
  return { invariant: meta.invariant, check: meta.label, member: m.identity, ok, detail };
}

// The probe run in one member's own view: a check per line it reports, a ✗ for each it did not,
// and the egress checks of a cell with network: egress.
async function memberChecks(
  ctx: Context,
  cell: ObservedCell,
  rec: CellRecord,
  m: Member,
  run: Runner,
  probe: Probe,
): Promise<Check[]> {
  const token = randomBytes(6).toString("hex");
  const outside = [ctx.stateRoot, ctx.paths.cells, "/usr", "/etc", os.tmpdir()];
  const env = probeEnv(ctx, cell, rec, m, token, outside);
  const host: HostSide = { token, outside, connectionsBefore: ctx.connections() };
  const r = await run(
    rec,
    cell.dir,
    m,
    ["/bin/sh", "-c", PROBE, "lazarus-verify"],
    env,
    probeTimeoutMs(Number(env.LZ_FORKS)),
  );
  const lines = parseProbe(r.stdout);
  if (lines.length === 0) {
    const last = r.stderr.trim().split("\n").slice(-2).join(" ");
    return [
      {
        invariant: "I1",
        check: "probe",
        member: m.identity,
        ok: false,
        detail: `the probe did not run in the ${probe.label} (exit ${r.exitCode}): ${last}`,
      },
    ];
  }
  const checks = lines.flatMap((l) => {
    const c = l.result === "names" ? hostEnvCheck(ctx, rec, m, probe, l.detail) : reportedCheck(ctx, rec, m, l, host);
    return c ? [c] : [];
  });
  checks.push(...unreported(lines, m.identity, rec.network === "host", r));
  if (rec.network === "egress") checks.push(...(await egressChecks(ctx, cell, rec, m, run)));
  return checks;
}

// A probing backend's checks of a cell: the network opt-in, each member's probe, the disk quota,
// and the backend's word on how a stop ends everything a member started.
async function probeChecks(
  ctx: Context,
  cell: ObservedCell,
  rec: CellRecord,
  run: Runner,
  probe: Probe,
): Promise<Check[]> {
  const checks: Check[] = [];
  if (rec.network === "host")
    checks.push({
      invariant: "I4",
      check: "network segmentation",
      ok: false,
      detail: "the cell declares network: host (an explicit opt-in)",
    });
  for (const m of rec.members) checks.push(...(await memberChecks(ctx, cell, rec, m, run, probe)));
  if (rec.disk) checks.push(diskCheck(cell, rec.disk.bytes));
  checks.push({ invariant: "I5", check: probe.stop.check, ok: true, detail: probe.stop.detail });
  return checks;
}

// The egress probe in a member's view: each check it reports, and a ✗ for each it did not.
async function egressChecks(
  ctx: Context,
  cell: ObservedCell,
  rec: CellRecord,
  m: Member,
  run: Runner,
): Promise<Check[]> {
  const env = {
    LZ_PROXY_PORT: String(MEMBER_PORT),
    LZ_PORT: String(ctx.port),
    LZ_LISTED: listedTarget(rec.egress ?? []),
  };
  const r = await run(rec, cell.dir, m, ["/bin/sh", "-c", EGRESS_PROBE, "lazarus-verify-egress"], env);
  const lines = parseProbe(r.stdout);
  const seen = new Set(lines.map((l) => l.check));
  const out: Check[] = lines.flatMap((l) => {
    const meta = EGRESS_CHECKS[l.check];
    return meta
      ? [{ invariant: meta.invariant, check: meta.label, member: m.identity, ok: l.result === "ok", detail: l.detail }]
      : [];
  });
  for (const [key, meta] of Object.entries(EGRESS_CHECKS))
    if (!seen.has(key))
      out.push({
        invariant: meta.invariant,
        check: meta.label,
        member: m.identity,
        ok: false,
        detail: `the egress probe ended before reporting it (exit ${r.exitCode})`,
      });
  return out;
}

// A probe that ended early (killed, or made to fail by what it found) proves nothing of what it
// did not report: each check it did not report is a ✗, never a silent pass.
export function unreported(
  lines: ProbeLine[],
  member: string,
  hostNetwork: boolean,
  r: { exitCode?: number | null; stderr: string },
): Check[] {
  const seen = new Set(lines.map((l) => (l.result === "names" ? "names" : l.check)));
  const last = r.stderr.trim().split("\n").slice(-1)[0];
  const detail = `the probe ended before reporting it (exit ${r.exitCode}${last ? `: ${last}` : ""})`;
  const out: Check[] = [];
  if (!seen.has("names")) out.push({ invariant: "I2", check: "host environment", member, ok: false, detail });
  for (const [key, meta] of Object.entries(PROBE_CHECKS)) {
    if (!seen.has(key) && !(key === "host-loopback" && hostNetwork))
      out.push({ invariant: meta.invariant, check: meta.label, member, ok: false, detail });
  }
  return out;
}

// Names bubblewrap creates directly in the sandbox's /tmp or /dev/shm to mount binds below them.
function mountPointsIn(binds: string[]): string[] {
  return binds.flatMap((b) => {
    const m = /^\/(?:tmp|dev\/shm)\/([^/]+)/.exec(b);
    return m ? [m[1] as string] : [];
  });
}

// What a cell's backend proves: its probe run in each member's own view, or its fixed list.
async function backendChecks(ctx: Context, cell: ObservedCell, rec: CellRecord, live: Backends): Promise<Check[]> {
  const plan = backendSpec(rec.backend).verify;
  if ("checks" in plan) return plan.checks();
  const b = live.get(rec.backend);
  if (!b.exec) throw new LazarusError("BUG", `backend ${rec.backend} has a probe but no exec`);
  const exec = b.exec.bind(b);
  const memberFilesInMeta = backendSpec(rec.backend).memberFilesInMeta;
  // the member's own view (its portfolio too), with the probe's command and env: never the
  // member's declared env (LD_PRELOAD of a library in its home would answer the probe), no file of
  // the config dir, no venv (MemberRun.venv)
  const run: Runner = (r, cellDir, m, command, env, timeoutMs) =>
    exec(
      r,
      memberSpec(r, cellPaths(cellDir), m, { command, env, configDir: NO_CONFIG_DIR, memberFilesInMeta, venv: false }),
      timeoutMs,
    );
  return probeChecks(plan.probe.operatorBinds ? ctx : { ...ctx, mountPoints: [] }, cell, rec, run, plan.probe);
}

// Verify the named live cells (all when none is named).
export async function verifyCells(
  paths: StatePaths,
  names: string[],
  settings: HostSettings,
  hostEnv: NodeJS.ProcessEnv,
): Promise<CellReport[]> {
  const stateRoot = path.dirname(paths.ledger);
  const observed = await observe(paths);
  const live = [...observed.cells.values()].flatMap((s) => (s.live?.record ? [s.live] : []));
  for (const n of names)
    if (!live.some((c) => c.name === n))
      throw new LazarusError("NO_SUCH_CELL", `no live cell named ${n} in ${paths.cells}; see lazarus status`);
  const ledger = await verifyLedger(paths.ledger, paths.ledgerHead);
  const ledgerCheck: Check = ledger.ok
    ? { invariant: "I6", check: "ledger chain", ok: true, detail: `${ledger.entries} entries, hash chain intact` }
    : { invariant: "I6", check: "ledger chain", ok: false, detail: `line ${ledger.line}: ${ledger.problem}` };
  let connections = 0;
  const server = net.createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const ctx: Context = {
    paths,
    stateRoot,
    live,
    port: (server.address() as net.AddressInfo).port,
    connections: () => connections,
    hostEnvNames: Object.keys(hostEnv),
    mountPoints: mountPointsIn(settings.sandbox.roBinds),
  };
  const running = backends(stateRoot, hostEnv, settings);
  try {
    const reports: CellReport[] = [];
    for (const cell of live) {
      if (names.length && !names.includes(cell.name)) continue;
      const rec = cell.record as CellRecord;
      const checks = await backendChecks(ctx, cell, rec, running);
      reports.push({ name: cell.name, backend: rec.backend, checks: [...checks, ledgerCheck] });
    }
    return reports;
  } finally {
    server.close();
  }
}
