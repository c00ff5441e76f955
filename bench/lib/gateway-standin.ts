// The gateway bench's provider: the tests' stand-in (test/gateway/standin.ts) in a process of its
// own, streaming the shape it is given; prints its URL.
// Usage: node --import tsx bench/lib/gateway-standin.ts KEY [EVENTS GAP_MS FIRST_MS]
import { startStandin } from "../../test/gateway/standin.js";

const [key = "sk-bench", events, gapMs, firstMs] = process.argv.slice(2);
const s = await startStandin({
  key,
  record: false,
  // as long as the gateway's: with node's 5 s, the bench's own client raced the stand-in's idle
  // close between phases on the direct path ("socket hang up"), a race a real provider's minutes
  // rarely show and the gateway itself now survives (it sends the call again on a new connection)
  keepAliveMs: 65_000,
  ...(events ? { stream: { events: Number(events), gapMs: Number(gapMs ?? 0), firstMs: Number(firstMs ?? 0) } } : {}),
});
process.stdout.write(`${s.url}\n`);
