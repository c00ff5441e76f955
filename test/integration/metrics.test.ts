// The real daemon's /metrics, scraped over 127.0.0.1 and checked by Prometheus's own linter
// (`promtool check metrics`, Debian package prometheus; .ci/run installs it).
import { appendFileSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { which } from "../../src/util/which.js";
import {
  AGENT,
  cellYaml,
  cleanup,
  configDir,
  freePort,
  readRecord,
  startWatching,
  stopWatches,
  tempDir,
} from "../helpers.js";

const promtool = which("promtool", process.env.PATH);
let state: string;
let config: string;
let port: number;

const agentCell = (name: string, extra: Partial<Parameters<typeof cellYaml>[0]> = {}) =>
  cellYaml({ name, ttl: "4h", members: [{ identity: "agent:allegro", command: ["node", AGENT] }], ...extra });
const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
const sample = (text: string, series: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

beforeAll(async () => {
  state = tempDir("lazarus-metrics-state-");
  config = configDir({ "cells.d/alpha.yaml": agentCell("alpha"), "cells.d/beta.yaml": agentCell("beta") });
  port = await freePort();
  await startWatching([
    "--config",
    config,
    "--state-dir",
    state,
    "--metrics-port",
    String(port),
    "--metrics-host",
    "127.0.0.1",
    "--stop-timeout",
    "2000",
  ]);
});
afterAll(async () => {
  await stopWatches();
  cleanup(state, config);
});

describe("lazarus watch /metrics", () => {
  it("passes promtool check metrics", async (ctx) => {
    if (!promtool) ctx.skip(true, "promtool is not installed (apt-get install prometheus; .ci/run does)");
    const text = await scrape();
    const r = await execa(promtool as string, ["check", "metrics"], { input: text, reject: false });
    expect(`${r.stdout}${r.stderr}`.trim()).toBe("");
    expect(r.exitCode).toBe(0);
  });

  it("the linter is not a rubber stamp: a counter without _total and without help fails it", async (ctx) => {
    if (!promtool) ctx.skip(true, "promtool is not installed (apt-get install prometheus; .ci/run does)");
    const r = await execa(promtool as string, ["check", "metrics"], {
      input: "# TYPE lazarus_bad counter\nlazarus_bad 1\n",
      reject: false,
    });
    expect(r.exitCode).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/_total/);
  });

  it("has help text for every metric and ends every counter in _total", async () => {
    const text = await scrape();
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => ({
      name: m[1] as string,
      type: m[2] as string,
    }));
    const helps = new Set([...text.matchAll(/^# HELP (\S+) \S/gm)].map((m) => m[1]));
    expect(types.length).toBeGreaterThan(10);
    for (const t of types) {
      expect(helps.has(t.name), t.name).toBe(true);
      if (t.type === "counter") expect(t.name).toMatch(/_total$/);
    }
  });

  it("reports each cell's state, the counts by state, reconciles by result and the version", async () => {
    const text = await scrape();
    expect(sample(text, 'lazarus_cell_state{cell="alpha",state="active"}')).toBe(1);
    expect(sample(text, 'lazarus_cell_state{cell="beta",state="active"}')).toBe(1);
    expect(sample(text, 'lazarus_cells{state="active"}')).toBe(2);
    expect(sample(text, 'lazarus_cells{state="closed"}')).toBe(0); // every state is present, 0 when empty
    expect(sample(text, 'lazarus_reconciles_total{scope="full",result="success"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'lazarus_reconciles_total{scope="full",result="error"}')).toBe(0);
    expect(text).toMatch(/^lazarus_build_info\{version="\d+\.\d+\.\d+[^"]*"\} 1$/m);
    expect(sample(text, "process_start_time_seconds")).toBeGreaterThan(0);
  });

  it("moves a cell's series when it changes state, leaving no stale one behind", async () => {
    writeFileSync(path.join(config, "cells.d/beta.yaml"), agentCell("beta", { state: "closed" }));
    let text = "";
    const end = Date.now() + 20_000;
    while (Date.now() < end) {
      text = await scrape();
      // The state moves inside the reconcile; its counter when the reconcile ends, a moment later.
      if (
        sample(text, 'lazarus_cell_state{cell="beta",state="closed"}') === 1 &&
        (sample(text, 'lazarus_reconciles_total{scope="cells",result="success"}') ?? 0) >= 1
      )
        break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(sample(text, 'lazarus_cell_state{cell="beta",state="closed"}')).toBe(1);
    expect(sample(text, 'lazarus_cell_state{cell="beta",state="active"}')).toBeUndefined();
    expect(sample(text, 'lazarus_cells{state="active"}')).toBe(1);
    expect(sample(text, 'lazarus_cells{state="closed"}')).toBe(1);
    expect(sample(text, 'lazarus_reconciles_total{scope="cells",result="success"}')).toBeGreaterThanOrEqual(1);
    if (promtool) {
      const r = await execa(promtool, ["check", "metrics"], { input: text, reject: false });
      expect(`${r.stdout}${r.stderr}`.trim()).toBe("");
    }
  });

  it("counts egress attempts per cell and verdict, from the proxy's events file", async () => {
    // Lines as the egress proxy appends them to <state>/egress/events.jsonl (the proxy writing
    // them is tested in test/egress/proxy.test.ts; here, the daemon reading them for /metrics).
    const attempt = (cell: string, verdict: string) =>
      `${JSON.stringify({ time: new Date().toISOString(), cell, member: "agent:a", kind: "connect", host: "h.test", port: 443, verdict, reason: "test", bytesUp: 0, bytesDown: 0, durationMs: 1 })}\n`;
    mkdirSync(path.join(state, "egress"), { recursive: true });
    const file = path.join(state, "egress", "events.jsonl");
    appendFileSync(file, attempt("alpha", "allowed") + attempt("alpha", "refused") + attempt("alpha", "refused"));
    appendFileSync(file, `${attempt("beta", "allowed")}{"torn`); // a line still being written is not counted
    const series = (cell: string, verdict: string) =>
      `lazarus_egress_connections_total{cell="${cell}",verdict="${verdict}"}`;
    let text = await scrape();
    expect(sample(text, series("alpha", "allowed"))).toBe(1);
    expect(sample(text, series("alpha", "refused"))).toBe(2);
    expect(sample(text, series("beta", "allowed"))).toBe(1);
    expect(sample(text, series("beta", "refused"))).toBeUndefined();
    appendFileSync(file, `"}\n${attempt("beta", "refused")}`); // the torn line ends (as garbage), one more
    text = await scrape();
    expect(sample(text, series("alpha", "refused"))).toBe(2); // counted once, not again
    expect(sample(text, series("beta", "refused"))).toBe(1);
  });

  it("counts a failed action against its cell and as a reconcile error", { timeout: 60_000 }, async () => {
    // A member that cannot be restarted: its HERMES_HOME is a file now, so the restart's mkdir fails.
    const home = path.join(state, "cells", "alpha", "home", "allegro");
    const pid = readRecord(path.join(state, "cells", "alpha")).members[0]?.pid as number;
    rmSync(path.join(home, ".hermes"), { recursive: true, force: true });
    writeFileSync(path.join(home, ".hermes"), "not a directory\n");
    process.kill(-pid, "SIGKILL");
    let text = "";
    const end = Date.now() + 45_000;
    while (Date.now() < end) {
      text = await scrape();
      if ((sample(text, 'lazarus_cell_reconcile_errors_total{cell="alpha"}') ?? 0) >= 1) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(sample(text, 'lazarus_cell_reconcile_errors_total{cell="alpha"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'lazarus_cell_reconcile_errors_total{cell="beta"}')).toBeUndefined();
    expect(sample(text, 'lazarus_reconciles_total{scope="cells",result="error"}')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'lazarus_actions_total{action="restart",status="failed"}')).toBeGreaterThanOrEqual(1);
    if (promtool) {
      const r = await execa(promtool, ["check", "metrics"], { input: text, reject: false });
      expect(`${r.stdout}${r.stderr}`.trim()).toBe("");
    }
  });
});
