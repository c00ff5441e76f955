// What a member of an egress cell gets, whatever backend runs it: the proxy variables (the proxy
// itself listens on 127.0.0.1:3128 inside the member's own network namespace: bridge/).
import { MEMBER_PORT } from "./state.js";

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
