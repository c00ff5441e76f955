// The probe `lazarus verify` runs inside a member's own sandbox: it tries each thing a cell must
// not be able to do and prints one line per check, "<check>\t<ok|fail>\t<detail>". The verifier
// also checks the host side (files that must not appear, connections that must not arrive).
export const PROBE = String.raw`
ok() { printf '%s\tok\t%s\n' "$1" "$2"; }
bad() { printf '%s\tfail\t%s\n' "$1" "$2"; }

# (LZ_MOUNT_POINTS: the dirs bubblewrap made there for the operator's binds, not residue)
r=""; for f in $(ls -A /tmp /dev/shm 2>/dev/null | grep -v '^/' | grep -v '^$'); do case " $LZ_MOUNT_POINTS " in *" $f "*) ;; *) r="$r $f";; esac; done
if [ -z "$r" ]; then ok tmp-residue "/tmp and /dev/shm start empty"; else bad tmp-residue "found: $r"; fi

# Whether a write reached the host is decided on the host (a private /tmp takes writes).
w=""; for d in $LZ_OUTSIDE; do (echo x > "$d/.lazarus-verify-$LZ_TOKEN") 2>/dev/null && w="$w $d"; done
ok write-outside "tried$w"

r=""; for d in $LZ_SIBLINGS; do ls "$d" >/dev/null 2>&1 && r="$r $d"; done
if [ -z "$r" ]; then ok read-sibling "no other cell is visible"; else bad read-sibling "listed$r"; fi

r=""; for h in $LZ_OTHER_HOMES; do [ -e "/cell/home/$h" ] && r="$r $h"; done
if [ -z "$r" ]; then ok read-other-home "other members' homes are absent"; else bad read-other-home "sees home of$r"; fi

r=""; for f in $LZ_STATE $LZ_STATE/ledger.jsonl $LZ_SIBLING_CREDS; do [ -e "$f" ] && r="$r $f"; done
if [ -z "$r" ]; then ok read-state-dir "the state dir and other cells' credentials are absent"; else bad read-state-dir "sees$r"; fi

printf 'env\tnames\t%s\n' "$(env | sed 's/=.*//' | tr '\n' ' ')"

me=$(id -u)
uidof() { sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status" 2>/dev/null; }
r=""; n=0; for d in /proc/[0-9]*; do n=$((n + 1)); u=$(uidof "$(basename "$d")"); [ -n "$u" ] && [ "$u" != "$me" ] && r="$r $(basename "$d")(uid $u)"; done
if [ -z "$r" ]; then ok see-host-process "sees $n processes, all its own"; else bad see-host-process "sees processes of others:$r"; fi

r=""; for p in $LZ_HOST_PIDS; do u=$(uidof "$p"); [ -n "$u" ] && [ "$u" != "$me" ] && kill -0 "$p" 2>/dev/null && r="$r $p"; done
if [ -z "$r" ]; then ok signal-host-process "cannot signal Lazarus or a sibling member"; else bad signal-host-process "could signal$r"; fi

if command -v bash >/dev/null 2>&1; then
  if bash -c "exec 3<>/dev/tcp/127.0.0.1/$LZ_PORT" 2>/dev/null; then bad host-loopback "connected to 127.0.0.1:$LZ_PORT"; else ok host-loopback "127.0.0.1:$LZ_PORT unreachable"; fi
elif command -v nc >/dev/null 2>&1; then
  # whether it connected is decided on the host (the server counts connections)
  if echo | nc -w 2 127.0.0.1 "$LZ_PORT" >/dev/null 2>&1; then bad host-loopback "connected to 127.0.0.1:$LZ_PORT"; else ok host-loopback "127.0.0.1:$LZ_PORT unreachable"; fi
else
  printf 'host-loopback\tunknown\tno bash or nc in the sandbox to try a connection\n'
fi

# (the sleeps outlast a slow fork loop on a loaded host; counted with read, a builtin: no fork each)
( i=0; while [ "$i" -lt "$LZ_FORKS" ]; do sleep 120 & i=$((i + 1)); done ) >/dev/null 2>&1
n=0; for c in /proc/[0-9]*/comm; do comm=""; read -r comm 2>/dev/null < "$c"; [ "$comm" = sleep ] && n=$((n + 1)); done
if [ "$n" -lt "$LZ_FORKS" ]; then ok pid-limit "stopped at $n of $LZ_FORKS processes (limit $LZ_PIDS_MAX)"; else bad pid-limit "started all $LZ_FORKS processes"; fi
kill -9 -1 2>/dev/null
exit 0
`;

export interface ProbeLine {
  check: string;
  result: "ok" | "fail" | "unknown" | "names";
  detail: string;
}

// The probe's output, line by line; anything else it printed is ignored.
export function parseProbe(stdout: string): ProbeLine[] {
  const out: ProbeLine[] = [];
  for (const line of stdout.split("\n")) {
    const [check, result, ...rest] = line.split("\t");
    if (check && (result === "ok" || result === "fail" || result === "unknown" || result === "names"))
      out.push({ check, result, detail: rest.join("\t") });
  }
  return out;
}
