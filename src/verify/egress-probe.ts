// The probe `lazarus verify` runs inside a member of an egress cell, in its network namespace,
// through the proxy's door its processes use: a listed name is let through, an unlisted name, a
// raw IP, the metadata address and the host's loopback are refused, a direct connection has no
// route, and no name resolves inside. Lines as probe.ts prints them: "<check>\t<ok|fail|unknown>\t<detail>".
import type { Invariant } from "./types.js";

export const EGRESS_PROBE = String.raw`
ok() { printf '%s\tok\t%s\n' "$1" "$2"; }
bad() { printf '%s\tfail\t%s\n' "$1" "$2"; }
status() { # the proxy's status line for CONNECT $1, or nothing
  if command -v bash >/dev/null 2>&1; then
    bash -c 'exec 3<>/dev/tcp/127.0.0.1/'"$LZ_PROXY_PORT"' || exit 1; printf "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" "$1" "$1" >&3; IFS= read -r -t 15 l <&3; printf "%s" "$l"' lazarus-verify "$1" 2>/dev/null
  else
    printf 'CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n' "$1" "$1" | nc -w 5 127.0.0.1 "$LZ_PROXY_PORT" 2>/dev/null | head -1
  fi
}
code() { set -- $(status "$1" | tr -d '\r') none none; echo "$2"; }
direct() { # whether a direct TCP connection to $1 $2 succeeds
  if command -v bash >/dev/null 2>&1; then timeout 5 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; else echo | nc -w 3 "$1" "$2" >/dev/null 2>&1; fi
}
if ! command -v bash >/dev/null 2>&1 && ! command -v nc >/dev/null 2>&1; then
  for c in egress-listed egress-unlisted egress-raw-ip egress-metadata egress-loopback egress-direct egress-resolver; do printf '%s\tunknown\tno bash or nc in the view to try a connection\n' "$c"; done
  exit 0
fi
if [ -z "$LZ_LISTED" ]; then printf 'egress-listed\tunknown\tthe list has no plain host name to try\n'
else c=$(code "$LZ_LISTED"); case "$c" in 200|502|504) ok egress-listed "the proxy lets $LZ_LISTED through (status $c)";; *) bad egress-listed "CONNECT $LZ_LISTED answered $c";; esac; fi
c=$(code lazarus-verify-unlisted.invalid:443); [ "$c" = 403 ] && ok egress-unlisted "an unlisted name is refused (403)" || bad egress-unlisted "an unlisted name answered $c"
c=$(code 1.1.1.1:443); [ "$c" = 403 ] && ok egress-raw-ip "a raw IP is refused (403)" || bad egress-raw-ip "1.1.1.1:443 answered $c"
c=$(code 169.254.169.254:80); d=no; direct 169.254.169.254 80 && d=yes
[ "$c" = 403 ] && [ "$d" = no ] && ok egress-metadata "169.254.169.254 is refused by the proxy and has no route" || bad egress-metadata "proxy answered $c, direct connection: $d"
c=$(code "127.0.0.1:$LZ_PORT"); [ "$c" = 403 ] && ok egress-loopback "the host's 127.0.0.1:$LZ_PORT is refused (403)" || bad egress-loopback "127.0.0.1:$LZ_PORT answered $c"
r=""; for t in "1.1.1.1 443" "8.8.8.8 53"; do direct $t && r="$r $t"; done
[ -z "$r" ] && ok egress-direct "no direct connection leaves the member's namespace" || bad egress-direct "connected directly to$r"
if command -v getent >/dev/null 2>&1; then getent hosts example.com >/dev/null 2>&1 && bad egress-resolver "example.com resolved inside" || ok egress-resolver "no name resolves inside (no resolver)"
elif command -v nslookup >/dev/null 2>&1; then nslookup example.com 2>/dev/null | grep -q '^Address.*[0-9]\.[0-9]' && bad egress-resolver "example.com resolved inside" || ok egress-resolver "no name resolves inside (no resolver)"
else printf 'egress-resolver\tunknown\tno getent or nslookup in the view\n'; fi
exit 0
`;

export const EGRESS_CHECKS: Record<string, { invariant: Invariant; label: string }> = {
  "egress-listed": { invariant: "I4", label: "reach a listed host through the proxy" },
  "egress-unlisted": { invariant: "I4", label: "reach an unlisted host" },
  "egress-raw-ip": { invariant: "I4", label: "reach a raw IP address" },
  "egress-metadata": { invariant: "I4", label: "reach the cloud metadata address" },
  "egress-loopback": { invariant: "I4", label: "reach the host's loopback through the proxy" },
  "egress-direct": { invariant: "I4", label: "connect around the proxy" },
  "egress-resolver": { invariant: "I4", label: "resolve names inside (DNS leak)" },
};

// The first entry of a list that names one host and port (wildcards cannot be tried).
export function listedTarget(entries: readonly { host: string; ports: number[] }[]): string {
  const e = entries.find((x) => !x.host.startsWith("*."));
  return e ? `${e.host}:${e.ports.includes(443) ? 443 : e.ports[0]}` : "";
}
