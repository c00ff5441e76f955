// A member's gateway token lives only as long as its process: once apply finds the member gone
// (here killed with SIGKILL, its restart held back by the backoff), the real gateway refuses its
// old token (401), and the token its restart is given works. Through `lazarus apply` for real,
// against a stand-in provider on 127.0.0.1 (no real provider is reachable from this machine).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../helpers.js";
import { isAlive } from "../../src/host/proc.js";
import { ask as askAt, cell, environ, portfolio, startGatewayRun, type GatewayRun } from "./harness.js";

const KEY = "sk-operator-revoke-0123456789";

let gw: GatewayRun;
const run = (...args: string[]) => gw.run(...args);
const member = () => gw.memberOf("rv");
const tokenOf = (pid: number): string => environ(pid).OPENAI_API_KEY!;
const ask = async (token: string) => askAt(token, await gw.port());

beforeAll(async () => {
  gw = await startGatewayRun({
    key: KEY,
    prefix: "lazarus-gw-revoke",
    secrets: { "so/key": KEY },
    providers: (url) => [`{name: so, api: openai, baseUrl: "${url}/v1", keyFile: so/key}`],
    files: {
      "portfolios/rv.yaml": portfolio("rv", ["ezra"], ["{model: gpt-ok, provider: so}"]),
      "cells.d/rv.yaml": cell("rv", "ezra", "plain"),
    },
    homes: [["rv", "ezra"]],
  });
}, 60_000);

afterAll(() => gw?.end());

describe("a member's gateway token", () => {
  it("is refused once apply finds the member gone, and its restart's new token is served", async () => {
    const before = member();
    const old = tokenOf(before.pid!);
    expect((await ask(old)).model).toBe("gpt-ok"); // served while the member runs
    process.kill(before.pid!, "SIGKILL");
    await waitFor(() => !isAlive(before.pid, before.startTime)); // by /proc state: Z is dead
    const down = await run("apply");
    expect(down.exitCode, down.stdout + down.stderr).toBe(0);
    expect(member().status).toBe("down"); // its restart waits for the backoff
    await expect(ask(old)).rejects.toMatchObject({ status: 401 });
    const later = new Date(Date.now() + 60_000).toISOString();
    const up = await run("apply", "--now", later);
    expect(up.exitCode, up.stdout + up.stderr).toBe(0);
    const after = member();
    expect(after.status).toBe("running");
    expect(after.pid).not.toBe(before.pid);
    const fresh = tokenOf(after.pid!);
    expect(fresh).not.toBe(old);
    expect((await ask(fresh)).model).toBe("gpt-ok");
    await expect(ask(old)).rejects.toMatchObject({ status: 401 });
  }, 60_000);
});
