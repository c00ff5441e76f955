// The gateway bench's provider: the tests' stand-in (test/gateway/standin.ts) in a process of its
// own; prints its URL. Usage: node --import tsx bench/lib/gateway-standin.ts KEY
import { startStandin } from "../../test/gateway/standin.js";

const s = await startStandin({ key: process.argv[2] ?? "sk-bench" });
process.stdout.write(`${s.url}\n`);
