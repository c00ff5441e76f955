// Observing remote cells: one ssh call per host for every member of every remote cell on it
// (liveness, exit file, heartbeat). A host that cannot be reached (down, or refusing: a changed
// host key) leaves its cells unknown, with the reason: the planner holds them.
import type { ObservedCell } from "../../observe/types.js";
import { errorMessage } from "../../util/errors.js";
import { OBSERVE } from "./scripts.js";
import { Unreachable, describe, hostKey, run, ssh } from "./ssh.js";

const EXIT_RE = /^\s*(-?\d{1,3})\s*$/;

export async function observeRemote(
  stateRoot: string,
  cells: ObservedCell[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const groups = new Map<string, ObservedCell[]>();
  for (const c of cells) {
    const t = c.record?.remote;
    if (!t) {
      if (c.record) c.unreachable = "no remote host recorded";
      continue;
    }
    const key = `${hostKey(t)}\0${t.root}`;
    const g = groups.get(key);
    if (g) g.push(c);
    else groups.set(key, [c]);
  }
  await Promise.all(
    [...groups.values()].map(async (group) => {
      const target = group[0]?.record?.remote;
      if (!target) return;
      const args: string[] = [target.root];
      const slots: { cell: ObservedCell; i: number }[] = [];
      for (const c of group) {
        if (c.place !== "cells" || !c.record) continue;
        c.members.forEach((m, i) => {
          if (!m.command) return;
          args.push(
            c.record?.name ?? c.name,
            c.record?.uid ?? "-",
            m.home,
            m.pid !== undefined ? String(m.pid) : "-",
            m.startTime !== undefined ? String(m.startTime) : "-",
            m.spawnId ?? "-",
          );
          slots.push({ cell: c, i });
        });
      }
      let out: string;
      try {
        const r = await run(ssh(stateRoot, target, env), OBSERVE, args, { timeoutMs: 60_000 });
        if (r.code !== 0 || !/^end$/m.test(r.stdout))
          throw new Unreachable(target, r.stderr.trim() || `the observe script exited ${r.code}`);
        out = r.stdout;
      } catch (err) {
        const why = err instanceof Unreachable ? err.reason : errorMessage(err);
        for (const c of group) c.unreachable = `host ${describe(target)} unreachable: ${why.split("\n")[0]}`;
        return;
      }
      for (const line of out.split("\n")) {
        const f = line.split(" ");
        if (f[0] !== "m") continue;
        const slot = slots[Number(f[1])];
        if (!slot) continue;
        const m = slot.cell.members[slot.i];
        if (!m) continue;
        m.alive = f[2] === "1";
        const exitAt = f[3] && f[3] !== "-" ? Number(f[3]) : undefined;
        const hbAt = f[4] && f[4] !== "-" ? Number(f[4]) : undefined;
        const text = f.slice(5).join(" ");
        if (!m.alive && (m.status === "running" || m.status === "starting") && exitAt !== undefined) {
          const p = EXIT_RE.exec(text);
          if (p) m.exit = { code: Number.parseInt(p[1] as string, 10), at: exitAt };
          else
            (m.ignored ??= []).push(`exit file logs/${m.home}.exit on ${describe(target)} holds no exit code; ignored`);
        }
        if (m.heartbeatMs && hbAt !== undefined) m.heartbeatAt = hbAt;
      }
    }),
  );
}
