// The backend contract (src/backends/backend.ts) checked the same way for every backend, through
// the real CLI with real member processes: start, liveness, exit reasons, stopping a whole tree,
// finding a member again after a crashed apply, and checkpoint → close → scrub → restoreFrom.
// Members are found on the host by a random `sleep N` argument of their own (inside a container
// or sandbox a member's processes are still host processes), never by a pattern others could match.
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { randomInt } from "node:crypto";
import path from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { cellYaml, configDir, lazarus, readRecord, tempDir, waitFor, type CellOpts, procState } from "../helpers.js";

export interface Conformance {
  backend: "process" | "sandbox" | "container" | "remote";
  env: Record<string, string>; // for the CLI (uid range, cgroup root, engine, TMPDIR)
  extra?: string; // spec lines the backend needs (e.g. the image), indented by two spaces
  // How a member beyond its memory limit ends: reported as oom, only SIGKILLed (the engine does
  // not tell OOM kills apart here), or unlimited (no test).
  memory: "oom" | "killed" | "unlimited";
  skip?: string | undefined; // why this backend cannot run here
  setup?: () => Promise<void>; // once before the tests (e.g. build the test image)
  // Whatever the backend holds for the cells of a state dir besides processes (containers), to
  // prove nothing is left after scrub; and its removal after each test.
  leftovers?: (state: string) => Promise<string[]>;
  cleanup: (state: string) => Promise<void>;
  // Where a live cell's tree (project/, home/) and its members' exit files are, when not in the
  // cell's dir of the state dir (a remote cell's are on its host).
  tree?: (liveDir: string) => { dir: string; logs: string };
}

const T = (m: number): string => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();

// Live host processes whose command line is exactly `sleep <n>`.
export function sleepers(n: number): number[] {
  const out: number[] = [];
  const want = `sleep\0${n}\0`;
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "utf8") !== want) continue;
    } catch {
      continue;
    }
    const st = procState(Number(e));
    if (st !== undefined && st !== "Z" && st !== "X") out.push(Number(e));
  }
  return out;
}

// A number no other test's sleep carries.
const token = (): number => 7_000_000 + randomInt(2_000_000);

interface MemberView {
  identity: string;
  status: string;
  pid: number | null;
  exitCode: number | null;
  exitReason: string | null;
}

export function backendConformance(c: Conformance): void {
  describe.skipIf(c.skip)(`backend ${c.backend} conformance`, () => {
    let states: string[] = [];
    let dirs: string[] = [];
    beforeAll(async () => {
      await c.setup?.();
    }, 600_000);
    afterEach(async () => {
      for (const s of states) await c.cleanup(s);
      // retries: a member's pump may still be closing its log
      for (const d of [...states, ...dirs]) rmSync(d, { recursive: true, force: true, maxRetries: 5 });
      states = [];
      dirs = [];
    }, 600_000);

    // A state dir and config dir of this test's own, the CLI bound to them.
    const world = () => {
      const state = tempDir(`lazarus-conf-${c.backend}-`);
      const cfg = configDir({});
      states.push(state);
      dirs.push(cfg);
      const run = (args: string[], env: Record<string, string> = {}) =>
        lazarus([...args, "-c", cfg, "-s", state], { env: { ...c.env, ...env } });
      const declare = (o: Omit<CellOpts, "extra"> & { extra?: string }) =>
        writeFileSync(
          path.join(cfg, "cells.d", `${o.name}.yaml`),
          cellYaml({
            ...o,
            extra: [`  backend: ${c.backend}`, ...(c.extra ? [c.extra] : []), ...(o.extra ? [o.extra] : [])].join("\n"),
          }),
        );
      const apply = async (m: number, env: Record<string, string> = {}) => {
        const r = await run(["apply", "--yes", "--now", T(m)], env);
        return r;
      };
      const members = async (cell: string): Promise<MemberView[]> => {
        const r = await run(["status", "--json"]);
        expect(r.exitCode, r.stderr).toBe(0);
        const cells = (JSON.parse(r.stdout) as { cells: { name: string; place: string; members: MemberView[] }[] })
          .cells;
        return cells.find((x) => x.name === cell && x.place === "cells")?.members ?? [];
      };
      const live = (cell: string) => path.join(state, "cells", cell);
      const tree = (cell: string) =>
        c.tree ? c.tree(live(cell)) : { dir: live(cell), logs: path.join(live(cell), ".lazarus", "logs") };
      const project = (cell: string, file: string) => path.join(tree(cell).dir, "project", file);
      const exitFile = (cell: string, home: string) => path.join(tree(cell).logs, `${home}.exit`);
      return { state, cfg, run, declare, apply, members, live, project, exitFile };
    };

    it("starts a member: running, recorded, alive, working in its project", async () => {
      const w = world();
      const n = token();
      w.declare({
        name: "start",
        members: [{ identity: "agent:a", command: ["sh", "-c", `echo up > "$CELL_HOME/project/up"; exec sleep ${n}`] }],
      });
      const r = await w.apply(0);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      await waitFor(() => existsSync(w.project("start", "up")), 60_000);
      await waitFor(() => sleepers(n).length === 1, 60_000);
      const rec = readRecord(w.live("start")).members.find((m) => m.identity === "agent:a");
      expect(rec?.status).toBe("running");
      expect(rec?.pid).toBeGreaterThan(0);
      expect(rec?.spawnId).toBeTruthy();
      const [m] = await w.members("start");
      expect(m).toMatchObject({ identity: "agent:a", status: "running", pid: rec?.pid });
      expect((await w.run(["plan", "--detailed-exitcode", "--now", T(1)])).exitCode).toBe(0);
    }, 300_000);

    it("reports the exit code a member ended with", async () => {
      const w = world();
      w.declare({
        name: "code",
        members: [{ identity: "agent:a", command: ["sh", "-c", "exit 3"], restart: "never" }],
      });
      expect((await w.apply(0)).exitCode).toBe(0);
      await waitFor(() => existsSync(w.exitFile("code", "a")), 60_000);
      const r = await w.apply(1);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      const [m] = await w.members("code");
      expect(m).toMatchObject({ status: "exited", pid: null, exitCode: 3, exitReason: null });
    }, 300_000);

    it("sees a member killed from outside as down, ended by its signal (liveness)", async () => {
      const w = world();
      const n = token();
      w.declare({
        name: "sig",
        members: [{ identity: "agent:a", command: ["sh", "-c", `sleep ${n}; exit 0`], restart: "never" }],
      });
      expect((await w.apply(0)).exitCode).toBe(0);
      await waitFor(() => sleepers(n).length === 1, 60_000);
      expect((await w.members("sig"))[0]?.status).toBe("running");
      // the member's own shell (the sleep's parent) dies by SIGKILL, then its orphaned sleep
      // (a pid namespace may have taken it down already)
      const sleeper = sleepers(n)[0] as number;
      const stat = readFileSync(`/proc/${sleeper}/stat`, "utf8");
      const shell = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      for (const pid of [shell, sleeper]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone with its namespace
        }
      }
      await waitFor(() => existsSync(w.exitFile("sig", "a")), 60_000);
      const r = await w.apply(1);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      const [m] = await w.members("sig");
      expect(m).toMatchObject({ status: "exited", pid: null, exitCode: 128 + 9 });
    }, 300_000);

    it.skipIf(c.memory === "unlimited")(
      "ends a member beyond its memory limit",
      async () => {
        const w = world();
        w.declare({
          name: "oom",
          extra: "  resources: {memory: 32Mi}",
          members: [
            {
              identity: "agent:a",
              command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"],
              restart: "never",
            },
          ],
        });
        expect((await w.apply(0)).exitCode).toBe(0);
        await waitFor(() => existsSync(w.exitFile("oom", "a")), 60_000);
        expect((await w.apply(1)).exitCode).toBe(0);
        const [m] = await w.members("oom");
        if (c.memory === "oom") expect(m).toMatchObject({ status: "exited", exitReason: "oom" });
        else expect(m).toMatchObject({ status: "exited", exitCode: 128 + 9 });
      },
      300_000,
    );

    it("stops a member's whole tree on close: its forked child goes too", async () => {
      const w = world();
      const child = token();
      const main = token();
      w.declare({
        name: "tree",
        members: [{ identity: "agent:a", command: ["sh", "-c", `sleep ${child} & exec sleep ${main}`] }],
      });
      expect((await w.apply(0)).exitCode).toBe(0);
      await waitFor(() => sleepers(child).length === 1 && sleepers(main).length === 1, 60_000);
      w.declare({
        name: "tree",
        state: "closed",
        members: [{ identity: "agent:a", command: ["sh", "-c", `sleep ${child} & exec sleep ${main}`] }],
      });
      const r = await w.apply(1);
      expect(r.exitCode, r.stdout + r.stderr).toBe(0);
      expect(existsSync(path.join(w.state, "graveyard", "tree"))).toBe(true);
      expect(sleepers(main)).toEqual([]);
      expect(sleepers(child)).toEqual([]);
    }, 300_000);

    it("finds a member again after the apply that started it was killed, instead of starting a second", async () => {
      const w = world();
      const n = token();
      w.declare({ name: "crash", members: [{ identity: "agent:a", command: ["sleep", String(n)] }] });
      const crashed = await w.apply(0, { LAZARUS_FAILPOINT: "member:after-spawn" });
      expect(crashed.signal, crashed.stdout + crashed.stderr).toBe("SIGKILL");
      await waitFor(() => sleepers(n).length === 1, 60_000);
      const first = sleepers(n)[0];
      const again = await w.apply(0);
      expect(again.exitCode, again.stdout + again.stderr).toBe(0);
      expect((await w.run(["plan", "--detailed-exitcode", "--now", T(0)])).exitCode).toBe(0);
      const [m] = await w.members("crash");
      expect(m?.status).toBe("running");
      expect(sleepers(n)).toEqual([first]); // the same process, and only it
    }, 300_000);

    it("carries work through checkpoint, close, scrub and restoreFrom: last, leaving nothing after scrub", async () => {
      const w = world();
      const n = token();
      const writer = [
        "sh",
        "-c",
        `[ -e "$CELL_HOME/project/work.txt" ] || echo "written inside" > "$CELL_HOME/project/work.txt"; exec sleep ${n}`,
      ];
      w.declare({ name: "keep", members: [{ identity: "agent:w", command: writer }] });
      expect((await w.apply(0)).exitCode).toBe(0);
      await waitFor(() => existsSync(w.project("keep", "work.txt")), 60_000);
      const cp = await w.run(["checkpoint", "keep", "--now", T(1)]);
      expect(cp.exitCode, cp.stdout + cp.stderr).toBe(0);
      w.declare({ name: "keep", state: "closed", members: [{ identity: "agent:w", command: writer }] });
      expect((await w.apply(10)).exitCode).toBe(0);
      const scrub = await w.apply(60);
      expect(scrub.exitCode, scrub.stdout + scrub.stderr).toBe(0);
      expect(existsSync(w.live("keep"))).toBe(false);
      expect(existsSync(path.join(w.state, "graveyard", "keep"))).toBe(false);
      expect(sleepers(n)).toEqual([]);
      if (c.leftovers) expect(await c.leftovers(w.state)).toEqual([]);
      w.declare({ name: "keep", extra: "  restoreFrom: last", members: [{ identity: "agent:w", command: writer }] });
      const back = await w.apply(70);
      expect(back.exitCode, back.stdout + back.stderr).toBe(0);
      expect(readRecord(w.live("keep")).restoredFrom).toBeDefined();
      expect(readFileSync(w.project("keep", "work.txt"), "utf8")).toBe("written inside\n");
      await waitFor(() => sleepers(n).length === 1, 60_000); // and the restored member runs on it
    }, 300_000);
  });
}
