// The one-hop bridge: a host service (the egress proxy, the model gateway) gets a listening socket
// made inside a member's network namespace and accepts the member's connections itself. A short
// child (`nsenter --net=FILE node listen-child.mjs`) creates the listener there and hands it over
// node's IPC; nothing of Lazarus runs in the member's namespace, and no process relays between.
// When the service ends (even killed), the listener is gone: members' connections are refused.
import { spawn } from "node:child_process";
import type http from "node:http";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { LazarusError } from "../util/errors.js";
import { NSENTER } from "./netns.js";

const CHILD = fileURLToPath(new URL("./listen-child.mjs", import.meta.url));

// A listening net.Server on host:port inside the namespace of file, in this process.
export function listenInNetns(file: string, port: number, host = "127.0.0.1", timeoutMs = 15_000): Promise<net.Server> {
  const child = spawn(NSENTER, [`--net=${file}`, "--", process.execPath, CHILD, String(port), host], {
    stdio: ["ignore", "ignore", "pipe", "ipc"],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer);
      reject(new LazarusError("BRIDGE_FAILED", `cannot listen on ${host}:${port} in ${file}: ${why}`));
    };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      fail(`no answer in ${timeoutMs} ms`);
    }, timeoutMs);
    child.once("message", (_msg, handle) => {
      clearTimeout(timer);
      if (handle instanceof net.Server) resolve(handle);
      else fail("the child sent no listener");
    });
    child.once("error", (err) => fail(err.message));
    child.once("exit", (code) => fail(stderr.trim() || `exit ${code}`)); // a no-op once resolved
  });
}

// An HTTP server serving on a listener made in a namespace (it takes the listener's socket over).
export function serveOn(server: http.Server, listener: net.Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(listener, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

// Stop an HTTP server made by serveOn: no new connection, every open one ended.
export function closeServer(server: http.Server): void {
  server.close();
  server.closeAllConnections();
}
