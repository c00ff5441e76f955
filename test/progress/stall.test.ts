// Commit-or-abort with real members: one that commits every second is never stalled; one that runs
// but never commits is stalled once its slice is over and handled as onStall says, once per slice.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanup, procState, waitFor } from "../helpers.js";
import { COMMITTER, closeLog, idle, progressCell, sleep, type ProgressCell } from "./helpers.js";

const made: ProgressCell[] = [];
afterAll(() => cleanup(...made.flatMap((c) => [c.state, c.config])));
const cell = (...a: Parameters<typeof progressCell>): ProgressCell => {
  const c = progressCell(...a);
  made.push(c);
  return c;
};
const dead = (pid: number | undefined) => pid === undefined || [undefined, "Z"].includes(procState(pid));
const pidOf = (c: ProgressCell, id: string) => c.record().members.find((m) => m.identity === id)?.pid;

describe("a member that commits every second", () => {
  it("is never stalled over several reconciles with a 3s slice, and each commit is recorded when seen", async () => {
    const c = cell("committing", "  progress: {slice: 3s, onStall: restart}", [
      { identity: "agent:worker", role: "executor", command: ["sh", COMMITTER] },
    ]);
    expect((await c.apply()).exitCode).toBe(0);
    const pid = pidOf(c, "agent:worker");
    const started = Date.now();
    for (let i = 0; i < 5; i++) {
      await sleep(1_500);
      const r = await c.apply();
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout).not.toContain("stall");
    }
    expect(Date.now() - started).toBeGreaterThan(6_000); // twice the slice and more
    const s = c.progress();
    expect(s.slices).toBeGreaterThanOrEqual(4);
    expect(s.lastEvidence).toMatch(/^commit [0-9a-f]{12} on /);
    expect(Date.parse(s.lastEvidenceAt as string)).toBeGreaterThan(started);
    expect(s.stalls).toEqual([]);
    expect(pidOf(c, "agent:worker")).toBe(pid); // never restarted
    expect(c.ledger().filter((e) => e.action === "progress").length).toBeGreaterThanOrEqual(4);
    const st = await c.status();
    expect((st.cells[0] as { progress: { stalledForMs: number | null } }).progress.stalledForMs).toBeNull();
  }, 120_000);
});

describe("a member that runs but never commits", () => {
  it("notify: stalled after its slice (status says so, plan --now sees it coming), an event, members untouched", async () => {
    const c = cell("notified", "  progress: {slice: 8s, onStall: notify}", [idle()]);
    expect((await c.apply()).exitCode).toBe(0);
    const since = Date.parse(c.progress().since);
    const before = await c.plan();
    expect(before.actions).toEqual([]);
    expect(before.pending.map((p) => p.reason).join("\n")).toContain("without progress (slice 8s, onStall notify)");
    // what-if: the same plan 9s after the clock's start has the stall, without waiting for it
    const ahead = await c.plan(since + 9_000);
    expect(ahead.actions.map((a) => a.action)).toEqual(["stall"]);
    expect(ahead.actions[0]?.reason).toContain("no progress for 9s (slice 8s; no evidence yet");
    await sleep(Math.max(0, since + 8_300 - Date.now()));
    const st = (await c.status()).cells[0] as {
      progress: { stalledForMs: number };
      members: { identity: string; stalled?: { forMs: number } }[];
    };
    expect(st.progress.stalledForMs).toBeGreaterThanOrEqual(8_000);
    expect(st.members[0]?.stalled?.forMs).toBeGreaterThanOrEqual(8_000);
    const text = await c.run(["status"]);
    expect(text.stdout).toMatch(/progress \(slice 8s, onStall notify\): stalled for \d+s; no evidence yet/);
    expect(text.stdout).toMatch(/agent:idle .*running .*stalled \d+s/);
    const pid = pidOf(c, "agent:idle");
    const r = await c.apply();
    expect(r.stdout).toContain("stall");
    expect(pidOf(c, "agent:idle")).toBe(pid);
    expect(dead(pid)).toBe(false);
    const entry = c.ledger().find((e) => e.action === "stall");
    expect(entry?.details).toMatchObject({ onStall: "notify", members: ["agent:idle"], lastEvidence: null, slices: 0 });
    // handled: the clock runs again from now, so the next reconcile does not notify again
    expect((await c.plan()).actions).toEqual([]);
    expect(c.progress().stalls).toHaveLength(1);
  }, 60_000);

  it("a member that crashes and is restarted resumes the clock: it is stalled as soon as it runs again", async () => {
    const c = cell("crashing", "  progress: {slice: 3s, onStall: notify}", [idle("agent:idle", { restart: "always" })]);
    expect((await c.apply()).exitCode).toBe(0);
    const since = c.progress().since;
    const pid = pidOf(c, "agent:idle") as number;
    process.kill(pid, "SIGKILL"); // the member this test's apply started
    await waitFor(() => dead(pid));
    expect((await c.apply()).stdout).toContain("member-down");
    await sleep(10_500); // its first backoff
    const r = await c.apply();
    expect(r.stdout).toMatch(/restart .*agent:idle/);
    expect(dead(pidOf(c, "agent:idle"))).toBe(false);
    expect(c.progress().since).toBe(since);
    const p = await c.plan();
    expect(p.actions.map((a) => a.action)).toEqual(["stall"]);
    // counted from the clock's start (more than the backoff ago), not from the restart
    const secs = Number(/no progress for (?:(\d+)m)?(\d+)s/.exec(p.actions[0]?.reason ?? "")?.[2] ?? 0);
    const mins = Number(/no progress for (\d+)m/.exec(p.actions[0]?.reason ?? "")?.[1] ?? 0);
    expect(mins * 60 + secs).toBeGreaterThanOrEqual(10);
  }, 60_000);

  it("restart: the executor is restarted from the last checkpoint (a safety copy first), once per slice", async () => {
    const c = cell("restarted", "  progress: {slice: 2s, onStall: restart}", [idle()]);
    expect((await c.apply()).exitCode).toBe(0);
    expect((await c.run(["checkpoint", "restarted"])).exitCode).toBe(0);
    writeFileSync(path.join(c.dir, "project", "uncommitted.txt"), "work never committed\n"); // no evidence
    const pid = pidOf(c, "agent:idle");
    await sleep(2_300);
    const p = await c.plan();
    expect(p.actions.map((a) => a.action)).toEqual(["stall"]);
    expect(p.actions[0]?.reason).toMatch(/restart agent:idle from checkpoint \d{8}T\d{6}Z\.tar/);
    const r = await c.apply();
    expect(r.exitCode, r.stderr).toBe(0);
    const now = pidOf(c, "agent:idle");
    expect(now).not.toBe(pid);
    await waitFor(() => dead(pid));
    expect(dead(now)).toBe(false);
    expect(c.record().members[0]?.restarts).toBe(1);
    expect(existsSync(path.join(c.dir, "project", "uncommitted.txt"))).toBe(false); // the checkpoint's project/
    const entry = c.ledger().find((e) => e.action === "stall");
    expect(entry?.details).toMatchObject({ onStall: "restart", restarted: ["agent:idle"] });
    expect(entry?.details.restoredFrom).toMatch(/\.tar\.(zst|gz)$/);
    expect(entry?.details.safetyCheckpoint).toBeTruthy();
    // The clock runs again from the handling: within a slice of it, nothing is planned.
    const handled = Date.parse(c.progress().handledAt as string);
    expect((await c.plan(handled + 1_000)).actions).toEqual([]);
    expect((await c.plan(handled + 2_500)).actions.map((a) => a.action)).toEqual(["stall"]);
  }, 60_000);

  it("abort: the executor is stopped and stays stopped; the abort is in the ledger and the close log", async () => {
    const c = cell("aborted", "  progress: {slice: 2s, onStall: abort}", [idle("agent:idle", { restart: "always" })]);
    expect((await c.apply()).exitCode).toBe(0);
    const pid = pidOf(c, "agent:idle");
    await sleep(2_300);
    const r = await c.apply();
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toContain("abort: stop agent:idle");
    await waitFor(() => dead(pid));
    const m = c.record().members[0];
    expect(m?.status).toBe("exited");
    expect(m?.stalled?.outcome).toBe("abort");
    const entry = c.ledger().find((e) => e.action === "stall");
    expect(entry?.details).toMatchObject({ onStall: "abort", members: ["agent:idle"], lastEvidence: null, slices: 0 });
    // A minute later (restart: always, backoff long over) it is still not restarted; the cell is down.
    const later = await c.plan(Date.now() + 60_000);
    expect(later.actions.map((a) => a.action)).toEqual(["cell-down"]);
    expect(later.pending.map((x) => x.reason).join("\n")).toContain("aborted for no progress");
    // close it: the close log keeps the abort
    const yaml = path.join(c.config, "cells.d", "aborted.yaml");
    writeFileSync(yaml, readFileSync(yaml, "utf8").replace("spec:\n", "spec:\n  state: closed\n"));
    expect((await c.apply()).exitCode).toBe(0);
    const log = closeLog(c) as { progress: { stalls: { outcome: string; members: string[] }[]; slices: number } };
    expect(log.progress.stalls).toEqual([expect.objectContaining({ outcome: "abort", members: ["agent:idle"] })]);
    expect(log.progress.slices).toBe(0);
  }, 60_000);

  it("substitute: the executor is stopped, its substitute summoned and left to work; the executor waits", async () => {
    const c = cell(
      "substituted",
      "  progress: {slice: 2s, onStall: substitute}",
      [
        idle("agent:worker", { restart: "always" }),
        idle("agent:stand-in", { role: "substitute", replaces: "agent:worker" }),
      ],
      "  policy: {allowSubstitutes: true}",
    );
    const made = await c.apply();
    expect(made.exitCode, made.stderr + made.stdout).toBe(0);
    const pid = pidOf(c, "agent:worker");
    await sleep(2_300);
    const p = await c.plan();
    expect(p.actions[0]?.reason).toContain("stop agent:worker, summon substitute agent:stand-in");
    const r = await c.apply();
    expect(r.exitCode, r.stderr + r.stdout).toBe(0);
    await waitFor(() => dead(pid));
    const rec = c.record();
    expect(rec.members.find((m) => m.identity === "agent:worker")?.stalled?.outcome).toBe("substitute");
    const sub = rec.members.find((m) => m.identity === "agent:stand-in");
    expect(sub?.status).toBe("running");
    expect(dead(sub?.pid)).toBe(false);
    // Past the worker's backoff: it is not restarted while the stand-in works, and the stand-in stays.
    const later = await c.plan(Date.now() + 30_000);
    const kinds = later.actions.map((a) => `${a.action} ${a.reason}`).join("\n");
    expect(kinds).not.toMatch(/restart.*agent:worker|remove-member/);
    expect(later.pending.map((x) => x.reason).join("\n")).toContain("agent:worker: stopped for no progress");
  }, 60_000);
});
