// The daemon judges progress on its own (it wakes when a slice ends) and says so on /metrics:
// seconds since the last progress per running executor, stalls per cell and outcome. Scraped over
// 127.0.0.1 from a real `lazarus watch`.
import { afterAll, describe, expect, it } from "vitest";
import { cleanup, freePort, startWatching, stopWatches, waitFor } from "../helpers.js";
import { idle, progressCell, sleep } from "./helpers.js";

const c = progressCell("metered", "  progress: {slice: 2s, onStall: notify}", [idle()]);
afterAll(async () => {
  await stopWatches();
  cleanup(c.state, c.config);
});
const sample = (text: string, series: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe("lazarus watch and spec.progress", () => {
  it("notifies a stall when the slice ends, and /metrics shows the seconds since progress and the stalls", async () => {
    const port = await freePort();
    await startWatching([
      "--config",
      c.config,
      "--state-dir",
      c.state,
      "--metrics-port",
      String(port),
      "--metrics-host",
      "127.0.0.1",
    ]);
    const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const since = 'lazarus_member_seconds_since_progress{cell="metered",member="agent:idle"}';
    const stalls = 'lazarus_stalls_total{cell="metered",outcome="notify"}';
    let text = "";
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      text = await scrape();
      if ((sample(text, stalls) ?? 0) >= 1) break;
      await sleep(250);
    }
    expect(sample(text, stalls)).toBeGreaterThanOrEqual(1);
    const first = sample(text, since) as number;
    expect(first).toBeGreaterThanOrEqual(2); // no progress since the clock started
    await sleep(1_100);
    expect(sample(await scrape(), since)).toBeGreaterThan(first);
    await waitFor(() => c.ledger().some((e) => e.action === "stall" && e.cell === "metered"), 5_000);
  }, 40_000);
});
