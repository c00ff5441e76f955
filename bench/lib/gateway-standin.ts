// The gateway bench's provider: the tests' stand-in (test/gateway/standin.ts) in a process of its
// own, streaming the shape it is given; prints its URL.
// Usage: node --import tsx bench/lib/gateway-standin.ts KEY [EVENTS GAP_MS FIRST_MS]
import { startStandin } from "../../test/gateway/standin.js";

const [key = "sk-bench", events, gapMs, firstMs] = process.argv.slice(2);
const s = await startStandin({
  key,
  record: false,
  ...(events ? { stream: { events: Number(events), gapMs: Number(gapMs ?? 0), firstMs: Number(firstMs ?? 0) } } : {}),
});
process.stdout.write(`${s.url}\n`);
