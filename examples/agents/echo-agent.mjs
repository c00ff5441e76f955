// A tiny stand-in agent for the example cells: it writes a heartbeat and a note into its
// home, appends to the shared scratchpad once, lists its models through the model gateway, and
// exits cleanly on SIGTERM.
import { appendFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const home = process.env.HOME;
const cell = process.env.CELL_HOME;
const who = process.env.CELL_MEMBER;
try {
  appendFileSync(
    path.join(cell, "shared", "scratchpad.md"),
    `- ${new Date().toISOString()} ${who} joined as ${process.env.CELL_ROLE}\n`,
  );
} catch (err) {
  console.log(`${who}: cannot write the scratchpad (${err.code}): read-only for an observer`);
}
const beat = () => writeFileSync(path.join(home, ".heartbeat"), new Date().toISOString());
beat();
const timer = setInterval(beat, 5000);
process.on("SIGTERM", () => {
  clearInterval(timer);
  console.log(`${who}: SIGTERM, leaving`);
  process.exit(0);
});
console.log(`${who}: working in ${home}`);

// Its models come through Lazarus's model gateway: the official SDKs read OPENAI_BASE_URL and
// OPENAI_API_KEY (a token of this process, never a provider key). Listing them asks no provider;
// the list goes to ~/models.txt.
if (process.env.OPENAI_BASE_URL) {
  const note = (text) => writeFileSync(path.join(home, "models.txt"), `${text}\n`);
  fetch(`${process.env.OPENAI_BASE_URL}/models`, { headers: { authorization: `Bearer ${process.env.OPENAI_API_KEY}` } })
    .then((r) => r.json())
    .then((list) => note(`models through the gateway: ${list.data.map((m) => m.id).join(", ")}`))
    .catch((err) => note(`the model gateway did not answer (${err.message})`));
}
