// The backend contract, checked for the remote backend against a real sshd started here (the
// "remote" host is this machine, reached over SSH as a test user of its own).
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { afterAll } from "vitest";
import { readRecord } from "../helpers.js";
import { backendConformance } from "./conformance.js";
import { processesOf, remoteSkip, testHost, type TestHost } from "./remote-helpers.js";

const skip = remoteSkip();
let host: TestHost | undefined;

afterAll(async () => {
  await host?.remove();
}, 120_000);

backendConformance({
  backend: "remote",
  env: { LAZARUS_REMOTE_INLINE: "allow" }, // the connection is inline in the cell (the operator allows it)
  get extra() {
    const h = host as TestHost;
    return [
      "  remote:",
      "    host: 127.0.0.1",
      `    port: ${h.port}`,
      `    user: ${h.user}`,
      `    identityFile: ${h.identityFile}`,
      `    knownHosts: ${h.knownHosts}`,
      '    root: "~/conf"',
    ].join("\n");
  },
  memory: "unlimited", // no limits are enforced on the remote host
  skip,
  setup: async () => {
    host = await testHost();
    await host.start();
  },
  tree: (liveDir) => {
    const dir = readRecord(liveDir).remoteDir as string;
    return { dir, logs: path.join(dir, "logs") };
  },
  // the remote trees of the scrubbed cells
  leftovers: async () => {
    const root = path.join((host as TestHost).home, "conf");
    return existsSync(root) ? readdirSync(root).filter((e) => e.startsWith("keep.")) : [];
  },
  // members a failed test left on the remote host (the test user's processes, by pid)
  cleanup: async () => {
    for (const p of processesOf((host as TestHost).uid)) {
      try {
        if (
          readFileSync(`/proc/${p}/environ`, "utf8")
            .split("\0")
            .some((e) => e.startsWith("LAZARUS_SPAWN_ID="))
        )
          process.kill(p, "SIGKILL");
      } catch {
        // gone
      }
    }
  },
});
