// Forge publication end to end: the real CLI against stand-in forges (test/forge/stand-in.ts: no
// Gitea or GitHub can run here, so the test serves their API on 127.0.0.1, checking every request
// against the forges' own published descriptions). One spawn and one close comment per incarnation,
// through create, member changes, close, resurrect, kill -9 at every journal point, 500s and 429s;
// a 403 leaves the cell healthy and an event; the token never shows.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  AGENT,
  cellYaml,
  cleanup,
  configDir,
  freePort,
  lazarus,
  readRecord,
  startWatch,
  stopWatches,
  tempDir,
  waitFor,
} from "../helpers.js";
import { StandIn, type Kind } from "./stand-in.js";

const T = (m: number) => new Date(Date.parse("2030-01-01T00:00:00Z") + m * 60_000).toISOString();
const TOKEN = "s3cret-forge-token-0123456789";

let dirs: string[] = [];
let forges: StandIn[] = [];
afterEach(async () => {
  await stopWatches();
  for (const f of forges) await f.stop();
  cleanup(...dirs);
  dirs = [];
  forges = [];
});

const agent = { identity: "agent:allegro", command: ["node", AGENT] };
const ezra = { identity: "agent:ezra", command: ["node", AGENT] };

async function setup(kind: Kind = "gitea", members = [agent]) {
  const forge = new StandIn(kind, TOKEN);
  await forge.start();
  forges.push(forge);
  const config = configDir({ "cells.d/c.yaml": cellYaml({ name: "c", members }) });
  const state = tempDir("lazarus-state-");
  const secrets = tempDir("lazarus-secrets-");
  dirs.push(config, state, secrets);
  mkdirSync(path.join(secrets, "forge"));
  writeFileSync(path.join(secrets, "forge", "token"), `${TOKEN}\n`);
  const table = path.join(secrets, "..", `${path.basename(secrets)}-forges.yaml`);
  writeFileSync(
    table,
    `forges:\n  - match: "Other/"\n    kind: ${kind}\n    url: http://127.0.0.1:1\n    tokenFile: forge/token\n  - match: "Org/"\n    kind: ${kind}\n    url: ${forge.url}\n    tokenFile: forge/token\n`,
  );
  dirs.push(table);
  const env = { LAZARUS_FORGES: table, LAZARUS_SECRETS_DIR: secrets };
  const run = (m: number, extra: Record<string, string> = {}) =>
    lazarus(["apply", "-c", config, "-s", state, "--now", T(m)], { env: { ...env, ...extra }, timeoutMs: 60_000 });
  const write = (members: (typeof agent)[], state_?: "active" | "closed") =>
    writeFileSync(
      path.join(config, "cells.d", "c.yaml"),
      cellYaml({ name: "c", members, ...(state_ ? { state: state_ } : {}) }),
    );
  const ledger = () =>
    readFileSync(path.join(state, "ledger.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { action: string; cell: string; reason: string; details?: Record<string, unknown> });
  return { forge, config, state, secrets, env, run, write, ledger };
}

const markers = (forge: StandIn) =>
  forge.all().map((c) => /^<!-- lazarus:cell=(\S+) uid=(\S+) kind=(\S+) -->/.exec(c.body)?.slice(1).join(" "));

describe("forge publication (stand-in forges on 127.0.0.1)", () => {
  it("posts one spawn comment, edits it as members join and leave, and posts one close comment per incarnation", async () => {
    const s = await setup("gitea");
    expect((await s.run(0)).exitCode).toBe(0);
    expect(s.forge.all()).toHaveLength(1);
    const spawn = s.forge.all()[0]!;
    expect(spawn.issue).toBe("Org/repo#1");
    const life1 = readRecord(path.join(s.state, "cells", "c")).life as string;
    expect(spawn.body.startsWith(`<!-- lazarus:cell=c uid=${life1} kind=spawn -->`)).toBe(true);
    expect(spawn.body).toContain("agent:allegro");
    expect(spawn.body).toContain("- backend: process");
    const posted = s.ledger().find((e) => e.action === "publish");
    expect(posted?.details?.commentId).toBe(spawn.id);

    // A member joins: the same comment is edited, no new one.
    s.write([agent, ezra]);
    expect((await s.run(1)).exitCode).toBe(0);
    expect(s.forge.all()).toHaveLength(1);
    expect(s.forge.all()[0]!.body).toContain("agent:ezra");
    expect(s.forge.seen.filter((r) => r.operationId === "issueEditComment")).toHaveLength(1);
    // ...and leaves: still one comment, saying when it left.
    s.write([agent]);
    expect((await s.run(2)).exitCode).toBe(0);
    expect(s.forge.all()).toHaveLength(1);
    expect(s.forge.all()[0]!.body).toMatch(/agent:ezra \| executor \| \S+ \| left 2030-01-01T00:02:00.000Z/);

    // Close: one close comment. Applying again posts nothing more.
    s.write([agent], "closed");
    expect((await s.run(3)).exitCode).toBe(0);
    expect(markers(s.forge)).toEqual([`c ${life1} spawn`, `c ${life1} close`]);
    const close = s.forge.all()[1]!.body;
    expect(close).toContain("### Lazarus cell `c` closed");
    expect(close).toMatch(/- active: 2030-01-01T00:00:00.000Z → 2030-01-01T00:03:00.000Z \(3m\)/);
    expect((await s.run(4)).exitCode).toBe(0);
    expect(s.forge.all()).toHaveLength(2);

    // Resurrect within grace: a new incarnation, its own spawn comment; closing it, its own close.
    s.write([agent], "active");
    expect((await s.run(5)).exitCode).toBe(0);
    const life2 = readRecord(path.join(s.state, "cells", "c")).life as string;
    expect(life2).not.toBe(life1);
    s.write([agent], "closed");
    expect((await s.run(6)).exitCode).toBe(0);
    expect(markers(s.forge)).toEqual([`c ${life1} spawn`, `c ${life1} close`, `c ${life2} spawn`, `c ${life2} close`]);
    expect(s.forge.violations).toEqual([]);
  }, 120_000);

  it.each(["publish:queued", "publish:before-post", "publish:posted", "publish:saved"])(
    "a kill -9 at %s still ends with exactly one spawn comment, recorded in the ledger",
    async (point) => {
      const s = await setup("gitea");
      const killed = await s.run(0, { LAZARUS_FAILPOINT: point });
      expect(killed.signal).toBe("SIGKILL");
      expect((await s.run(1)).exitCode).toBe(0);
      expect((await s.run(2)).exitCode).toBe(0);
      expect(markers(s.forge)).toHaveLength(1);
      const id = s.forge.all()[0]!.id;
      const recorded = s.ledger().filter((e) => e.action === "publish");
      expect(recorded.length).toBeGreaterThanOrEqual(1);
      expect(recorded.every((e) => e.details?.commentId === id)).toBe(true);
      expect(s.forge.violations).toEqual([]);
    },
    60_000,
  );

  it("retries 500s and a 429 (honouring Retry-After) until the comment is posted, within one apply", async () => {
    const s = await setup("github");
    s.forge.answer({ status: 500 }, { status: 502 }, { status: 429, headers: { "retry-after": "3" } });
    const r = await s.run(0);
    expect(r.exitCode).toBe(0);
    expect(markers(s.forge)).toHaveLength(1);
    const seen = s.forge.seen;
    const i429 = seen.findIndex((x) => x.status === 429);
    expect(seen[i429 + 1]!.at - seen[i429]!.at).toBeGreaterThanOrEqual(2900);
    expect(seen.map((x) => x.status).slice(0, 3)).toEqual([500, 502, 429]);
    expect(s.forge.violations).toEqual([]);
  }, 60_000);

  it("a 403 is an event and a failed entry, never a failed apply or an unhealthy cell; the token shows nowhere", async () => {
    const s = await setup("gitea");
    s.forge.always = { status: 403 };
    const r = await s.run(0);
    expect(r.exitCode).toBe(0);
    expect(r.stderr).toContain("1 failed for good");
    const rec = readRecord(path.join(s.state, "cells", "c"));
    expect(rec.state).toBe("active");
    expect(rec.members[0]!.status).toBe("running");
    const failed = s.ledger().filter((e) => e.action === "publish-failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]!.reason).toContain("403");
    const events = await lazarus(["events", "c", "-s", s.state]);
    expect(events.stdout).toContain("publish-failed");
    // Not retried by the next apply; lazarus publish tries again once the forge lets it.
    expect((await s.run(1)).exitCode).toBe(0);
    expect(s.forge.seen).toHaveLength(1);
    s.forge.always = undefined;
    const again = await lazarus(["publish", "-s", s.state, "-c", s.config], { env: s.env });
    expect(again.exitCode).toBe(0);
    expect(markers(s.forge)).toHaveLength(1);
    const outbox = readdirSync(path.join(s.state, "outbox")).map((f) =>
      readFileSync(path.join(s.state, "outbox", f), "utf8"),
    );
    for (const text of [
      r.stdout,
      r.stderr,
      events.stdout,
      readFileSync(path.join(s.state, "ledger.jsonl"), "utf8"),
      ...outbox,
    ])
      expect(text).not.toContain(TOKEN);
    expect(s.forge.violations).toEqual([]);
  }, 60_000);

  it("github: lists with per_page and page, edits the comment found by its marker", async () => {
    const s = await setup("github");
    expect((await s.run(0)).exitCode).toBe(0);
    s.write([agent, ezra]);
    expect((await s.run(1)).exitCode).toBe(0);
    expect(s.forge.all()).toHaveLength(1);
    expect(s.forge.seen.some((x) => /per_page=100&page=1/.test(x.path))).toBe(true);
    expect(s.forge.seen.filter((x) => x.operationId === "issues/update-comment")).toHaveLength(1);
    expect(s.forge.violations).toEqual([]);
  }, 60_000);

  it("plan says where each cell publishes; publish --dry-run prints the comment and changes nothing", async () => {
    const s = await setup("gitea");
    writeFileSync(
      path.join(s.config, "cells.d", "d.yaml"),
      cellYaml({ name: "d", members: [agent] }).replace("Org/repo#1", "Elsewhere/repo#2"),
    );
    const plan = await lazarus(["plan", "-c", s.config, "-s", s.state, "--now", T(0)], { env: s.env });
    expect(plan.stdout).toContain(`c: publishes to gitea ${s.forge.url} Org/repo#1`);
    expect(plan.stdout).toContain("d: local only: no forge matches");
    expect((await s.run(0, {})).exitCode).toBe(0);
    const before = s.forge.seen.length;
    const dry = await lazarus(["publish", "--dry-run", "c", "-s", s.state, "-c", s.config], { env: s.env });
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toMatch(/# c spawn \(incarnation \w+\): published as comment \d+/);
    expect(dry.stdout).toContain("### Lazarus cell `c` spawned");
    const json = await lazarus(["publish", "--dry-run", "--json", "-s", s.state, "-c", s.config], { env: s.env });
    const parsed = JSON.parse(json.stdout) as { comments: { cell: string; publishes: boolean; why?: string }[] };
    expect(parsed.comments.find((c) => c.cell === "d")?.why).toBe("local only: no forge matches");
    expect(s.forge.seen.length).toBe(before);
  }, 60_000);

  it("the daemon publishes in the background, and its metrics count the outbox", async () => {
    const s = await setup("gitea");
    const port = await freePort();
    const daemon = startWatch(
      ["-c", s.config, "-s", s.state, "--metrics-port", String(port), "--stop-timeout", "2000"],
      s.env,
    );
    try {
      await waitFor(() => s.forge.all().length === 1, 30_000);
      s.write([agent, ezra]);
      await waitFor(() => s.forge.all()[0]?.body.includes("agent:ezra") === true, 30_000);
      expect(s.forge.all()).toHaveLength(1);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/lazarus_publish_comments\{status="done"\} 1/);
      expect(s.forge.violations).toEqual([]);
    } finally {
      daemon.child.kill("SIGTERM");
      await daemon.child;
    }
  }, 90_000);
});
