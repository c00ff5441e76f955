// What the egress proxy's once-a-second reload costs with N egress cells (one member each): a full
// read (SIGHUP) and the timer's call when nothing changed (a stat of the cells dir, the settings
// and the hosts file). The members' namespace files are not made (a door per member would be a
// namespace and a listener each): every reload finds them missing and opens no door, so this is the
// cost of reading the files, not of the doors.
// Usage: npx tsx bench/egress-reload.ts [cells=1000]
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { EgressService } from "../src/egress/service.js";
import { writeCellFile, writeSettingsFile } from "../src/egress/state.js";
import { memberNetnsFile } from "../src/bridge/netns.js";

const N = Number(process.argv[2] ?? 1000);
const dir = mkdtempSync(path.join(os.tmpdir(), "lazarus-bench-reload-"));
await writeSettingsFile(dir, { cidrs: [] });
for (let i = 0; i < N; i++) {
  await writeCellFile(dir, {
    formatVersion: 1,
    cell: `c${i}`,
    uid: `u${i}`,
    entries: [{ host: "api.example.com", ports: [443] }],
    members: [{ identity: "agent:a", home: "m", netns: memberNetnsFile(dir, `u${i}`, "m") }],
  });
}
const service = new EgressService(dir);
await service.reload();
async function cost(what: string, f: () => Promise<void>): Promise<void> {
  const cpu = process.cpuUsage();
  const t = performance.now();
  for (let i = 0; i < 9; i++) await f(); // below the timer's full read every 10th call
  const c = process.cpuUsage(cpu);
  console.log(
    `${N} cells, ${what}: ${((performance.now() - t) / 9).toFixed(2)} ms wall, ${((c.user + c.system) / 9 / 1000).toFixed(2)} ms CPU each`,
  );
}
await cost("full read (SIGHUP)", () => service.reload());
await cost("timer, nothing changed", () => service.reloadIfChanged());
await service.close();
rmSync(dir, { recursive: true, force: true });
rmSync(dir, { recursive: true, force: true });
