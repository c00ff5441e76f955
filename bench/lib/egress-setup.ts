// What the egress benches share: a server on the host's loopback, a member's network namespace
// and its egress cell file (one entry: bench.test at the server's port), the proxy started as
// apply starts it and waited for until its door in that namespace is open, and the proxy's CPU.
// A bench comparing two trees (bench/egress-ab.ts) passes each tree's own code (egressCode).
//
//   const server = await startServer();                 // answers "ok" (or a server of its own)
//   const cell = await memberCell(root, server.port);    // hosts file, namespace, cell file
//   const pid = await startCellProxy(cell);              // ensureProxy + its door open
//   ... nsenter --net=${cell.netns} ... 127.0.0.1:${MEMBER_PORT} ...
//   await endCell(cell);                                 // stop the proxy, remove the namespace
import { spawn, type ChildProcessByStdio } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Readable } from "node:stream";
import { pathToFileURL } from "node:url";
import * as doorsHere from "../../src/bridge/doors.js";
import * as netnsHere from "../../src/bridge/netns.js";
import type { EgressSettings } from "../../src/egress/settings.js";
import * as stateHere from "../../src/egress/state.js";
import * as superviseHere from "../../src/egress/supervise.js";

// The modules of one tree that set up a member's egress.
export interface EgressCode {
  state: typeof stateHere;
  supervise: typeof superviseHere;
  netns: typeof netnsHere;
  doors: typeof doorsHere;
}

// This tree's.
export const HERE: EgressCode = { state: stateHere, supervise: superviseHere, netns: netnsHere, doors: doorsHere };

// Another tree's (its sources, run by tsx as this one's are).
export async function egressCode(tree: string): Promise<EgressCode> {
  const mod = async <T>(rel: string): Promise<T> => (await import(pathToFileURL(path.join(tree, rel)).href)) as T;
  return {
    state: await mod<typeof stateHere>("src/egress/state.ts"),
    supervise: await mod<typeof superviseHere>("src/egress/supervise.ts"),
    netns: await mod<typeof netnsHere>("src/bridge/netns.ts"),
    doors: await mod<typeof doorsHere>("src/bridge/doors.ts"),
  };
}

// A server answering "ok" to anything.
export const OK_SERVER =
  `require("http").createServer((q,s)=>s.end("ok"))` +
  `.listen(0,"127.0.0.1",function(){console.log(this.address().port)})`;

export interface Server {
  proc: ChildProcessByStdio<null, Readable, null>;
  port: number;
}

// A node program (src: its source, which prints the port it listens on) in a process of its own.
export async function startServer(src = OK_SERVER): Promise<Server> {
  const proc = spawn(process.execPath, ["-e", src], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    proc.stdout.once("data", (d: Buffer) => resolve(Number(String(d).trim())));
    proc.once("exit", (code) => reject(new Error(`the bench's server exited (${code}) before it listened`)));
  });
  return { proc, port };
}

export interface MemberCell {
  root: string; // the state dir
  netns: string; // the member's namespace file
  ino: number; // its inode (what the proxy's door file names)
  settings: EgressSettings; // the proxy's: loopback allowed, bench.test resolved by a hosts file
}

// In state dir root: a hosts file naming bench.test, the member's namespace and the cell's egress
// file letting it reach bench.test:port.
export async function memberCell(root: string, port: number, code: EgressCode = HERE): Promise<MemberCell> {
  const hostsFile = path.join(root, "hosts");
  writeFileSync(hostsFile, "127.0.0.1 bench.test\n");
  const netns = code.netns.memberNetnsFile(root, "bench", "member");
  const ino = await code.netns.ensureNetns(netns);
  await code.state.writeCellFile(root, {
    formatVersion: 1,
    cell: "bench",
    uid: "bench",
    entries: [{ host: "bench.test", ports: [port] }],
    members: [{ identity: "agent:bench", home: "member", netns }],
  });
  return { root, netns, ino, settings: { cidrs: [{ address: "127.0.0.1", prefix: 32 }], hostsFile } };
}

// Until the proxy that running() names has its door open in the member's namespace.
export function waitForProxyDoor(
  cell: MemberCell,
  running: () => Promise<number | undefined>,
  code: EgressCode = HERE,
): Promise<void> {
  return code.doors.waitForDoor(code.state.doorsFile(cell.root), cell.netns, cell.ino, running, "the egress proxy");
}

// The proxy as apply starts it, its door open in the member's namespace; its pid. started(pid)
// is called as soon as it runs (before the wait), for a bench to register how to end it.
export async function startCellProxy(
  cell: MemberCell,
  code: EgressCode = HERE,
  started?: (pid: number) => void,
): Promise<number> {
  const pid = await code.supervise.ensureProxy(cell.root, cell.settings);
  started?.(pid);
  await waitForProxyDoor(cell, async () => (await code.supervise.runningProxy(cell.root))?.pid, code);
  return pid;
}

// The proxy stopped, the member's namespace removed (the state dir is the caller's).
export async function endCell(cell: MemberCell, code: EgressCode = HERE): Promise<void> {
  await code.supervise.stopProxy(cell.root);
  await code.netns.removeNetns(cell.netns);
}

// CPU time (ns) of a process and its children (the proxy and its splicer), every thread.
export function cpuNs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    for (const kid of readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean))
      ns += cpuNs(Number(kid));
  }
  return ns;
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
