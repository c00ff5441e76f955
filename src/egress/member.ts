// What a member of an egress cell gets, whatever backend runs it: its socket dir (shown at
// /run/lazarus/egress inside), the forwarder in front of its command, and the proxy variables.
import path from "node:path";
import { PERL_FORWARDER } from "./forwarder-perl.js";
import { MEMBER_PORT, MEMBER_SOCKET_DIR, SOCKET_NAME } from "./state.js";

export const FORWARDER_PERL = "/usr/bin/perl"; // the host's, which a sandbox shows under /usr

export const PROXY_URL = `http://127.0.0.1:${MEMBER_PORT}`;

// HTTP_PROXY, HTTPS_PROXY, ALL_PROXY (and the lower-case ones curl and git read), NO_PROXY.
export function proxyEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]) {
    env[k] = PROXY_URL;
    env[k.toLowerCase()] = PROXY_URL;
  }
  env.NO_PROXY = "localhost,127.0.0.1";
  env.no_proxy = env.NO_PROXY;
  return env;
}

// The member's command behind the forwarder (perl from the host's /usr).
export function forwardedCommand(command: readonly string[], perl = FORWARDER_PERL): string[] {
  return [
    perl,
    "-e",
    PERL_FORWARDER,
    String(MEMBER_PORT),
    path.posix.join(MEMBER_SOCKET_DIR, SOCKET_NAME),
    "0",
    "--",
    ...command,
  ];
}
