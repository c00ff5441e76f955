// The POSIX sh scripts Lazarus runs on a remote host (`sh -c SCRIPT lazarus ARGS...`). Every value
// arrives as a positional argument and is only ever expanded inside double quotes: no value is
// code. They need sh, coreutils, setsid (util-linux) and GNU tar, and read /proc (Linux).

// Shared functions. $root: the cells root (~/ expanded). celldir NAME UID: that cell's tree.
// pstat PID: its state, pgid, session and kernel start time (fails when there is no such process).
// owns PID START SPAWN CELL: PID is that member's process (alive, same start time, spawn id and
// cell in its environment).
const LIB = `
set -u
expand_root() { case $1 in "~/"*) printf '%s/%s' "$HOME" "\${1#"~/"}" ;; *) printf '%s' "$1" ;; esac; }
pstat() {
  _l=
  { read -r _l < "/proc/$1/stat"; } 2>/dev/null || [ -n "$_l" ] || return 1
  [ -n "$_l" ] || return 1
  _r=\${_l##*) }
  set -f
  set -- $_r
  set +f
  st_state=$1; st_pgid=$3; st_sid=$4; shift 19; st_start=$1
  case $st_state in Z|X) return 1 ;; esac
  return 0
}
hasenv() { grep -qxFz -e "$2" "/proc/$1/environ" 2>/dev/null; }
owns() {
  [ -n "$1" ] && [ "$1" != - ] || return 1
  pstat "$1" || return 1
  [ "$st_start" = "$2" ] || return 1
  hasenv "$1" "LAZARUS_SPAWN_ID=$3" && hasenv "$1" "CELL_ID=$4" && pstat "$1" && [ "$st_start" = "$2" ]
}
group_alive() {
  for _s in /proc/[0-9]*/stat; do
    _p=\${_s#/proc/}; _p=\${_p%/stat}
    pstat "$_p" && [ "$st_pgid" = "$1" ] && return 0
  done
  return 1
}
# member_group PGID START SPAWN CELL: the process group the member's leader made is the member's,
# with a process alive in it: its leader lives and is the member's (owns), or, once the leader
# exited, every live process of the group is in the session the leader made (session id = pgid)
# and carries the member's spawn id and cell in its environment (as proc.ts memberGroupPids).
member_group() {
  owns "$1" "$2" "$3" "$4" && return 0
  [ -n "$1" ] && [ "$1" != - ] && [ -n "$3" ] || return 1
  _any=1
  for _s in /proc/[0-9]*/stat; do
    _p=\${_s#/proc/}; _p=\${_p%/stat}
    pstat "$_p" && [ "$st_pgid" = "$1" ] || continue
    [ "$st_sid" = "$1" ] || return 1
    hasenv "$_p" "LAZARUS_SPAWN_ID=$3" && hasenv "$_p" "CELL_ID=$4" || return 1
    _any=0
  done
  return $_any
}
find_leader() {
  for _e in $(grep -lxFz -e "LAZARUS_SPAWN_ID=$1" /proc/[0-9]*/environ 2>/dev/null); do
    _p=\${_e#/proc/}; _p=\${_p%/environ}
    hasenv "$_p" "CELL_ID=$2" || continue
    pstat "$_p" || continue
    [ "$st_pgid" = "$_p" ] || continue
    echo "$_p $st_start"
    return 0
  done
  return 1
}
mtime_ms() { [ -f "$1" ] && [ ! -h "$1" ] && date -r "$1" +%s%3N 2>/dev/null; }
`;

// Probe: prints "lazarus-remote ok". Fails (ssh 255) when the host cannot be reached.
export const PROBE = `${LIB}
echo "lazarus-remote ok"`;

// Observe, batched: args root, then per member: NAME UID HOME PID START SPAWN (PID "-": none).
// One line per member: "m I ALIVE EXIT_MS|- HEARTBEAT_MS|- EXIT_TEXT" (exit text last, may be empty).
export const OBSERVE = `${LIB}
root=$(expand_root "$1"); shift
i=0
while [ $# -ge 6 ]; do
  name=$1 uid=$2 home=$3 pid=$4 start=$5 spawn=$6; shift 6
  d="$root/$name.$uid"
  alive=0
  owns "$pid" "$start" "$spawn" "$name" && alive=1
  ex=$(mtime_ms "$d/logs/$home.exit") || ex=-
  hb=$(mtime_ms "$d/home/$home/.heartbeat") || hb=-
  txt=
  [ "$ex" != - ] && txt=$(head -c 64 "$d/logs/$home.exit" | tr -d '\\n\\r')
  echo "m $i $alive $ex $hb $txt"
  i=$((i + 1))
done
echo "end"`;

// Lay out a cell's tree: args root NAME UID CREDS HOME... (CREDS 1: the credentials manifest is
// on stdin, written 0600 in .lazarus/secrets/). Prints the tree's absolute path.
export const LAYOUT = `${LIB}
root=$(expand_root "$1"); name=$2 uid=$3 creds=$4; shift 4
d="$root/$name.$uid"
umask 077
mkdir -p "$d/project" "$d/shared/artifacts" "$d/logs" "$d/.lazarus/secrets" "$d/home" || exit 3
[ -e "$d/shared/scratchpad.md" ] || : > "$d/shared/scratchpad.md"
for h in "$@"; do mkdir -p "$d/home/$h/.hermes" "$d/home/$h/.tmp" "$d/home/$h/.lazarus" || exit 3; done
if [ "$creds" = 1 ]; then cat > "$d/.lazarus/secrets/credentials.json.tmp" && mv -f "$d/.lazarus/secrets/credentials.json.tmp" "$d/.lazarus/secrets/credentials.json" || exit 3; fi
echo "$d"`;

// Put a member's portfolio in place (stdin; empty: remove it): args root NAME UID HOME.
export const PORTFOLIO = `${LIB}
root=$(expand_root "$1"); name=$2 uid=$3 home=$4
f="$root/$name.$uid/home/$home/.lazarus/portfolio.json"
mkdir -p "\${f%/*}" || exit 3
cat > "$f.tmp" || exit 3
if [ -s "$f.tmp" ]; then mv -f "$f.tmp" "$f"; else rm -f "$f.tmp" "$f"; fi`;

// Start a member detached: args root NAME UID HOME SPAWN PORTFOLIO(json or "") ENV... -- CMD...
// stdin: the credentials manifest. Prints "started PID START" once the member's environment is in
// place (so find and owns see it), or fails.
export const START = `${LIB}
root=$(expand_root "$1"); name=$2 uid=$3 home=$4 spawn=$5 portfolio=$6; shift 6
d="$root/$name.$uid"
umask 077
mkdir -p "$d/project" "$d/shared/artifacts" "$d/logs" "$d/.lazarus/secrets" "$d/home/$home/.hermes" "$d/home/$home/.tmp" "$d/home/$home/.lazarus" || exit 3
cat > "$d/.lazarus/secrets/credentials.json.tmp" && mv -f "$d/.lazarus/secrets/credentials.json.tmp" "$d/.lazarus/secrets/credentials.json" || exit 3
if [ -n "$portfolio" ]; then printf '%s\\n' "$portfolio" > "$d/home/$home/.lazarus/portfolio.json.tmp" && mv -f "$d/home/$home/.lazarus/portfolio.json.tmp" "$d/home/$home/.lazarus/portfolio.json" || exit 3; fi
rm -f "$d/logs/$home.exit"
cd "$d/home/$home" || exit 3
setsid env -i "$@" < /dev/null >> "$d/logs/$home.log" 2>&1 &
pid=$!
# Its start time now: it is this shell's unreaped child, so /proc/PID/stat exists even when the
# command has already exited (a zombie keeps its start time).
pstat "$pid"
start=\${st_start:--}
n=0
while [ $n -lt 200 ]; do
  hasenv "$pid" "LAZARUS_SPAWN_ID=$spawn" && break
  pstat "$pid" || break
  sleep 0.05; n=$((n + 1))
done
echo "started $pid $start"`;

// Find a member's process by its spawn id: args SPAWN CELL. Prints "PID START" or nothing.
export const FIND = `${LIB}
find_leader "$1" "$2" || true`;

// Stop a member's process group: args PID START SPAWN CELL TIMEOUT_MS. TERM, then KILL after the
// timeout; exits 0 once the group is gone (or was never this member's), 4 if it survived KILL.
// The group is stopped whether its leader lives or not: children a leader left in it when it
// exited (sh -c 'sleep 3600 & exit 1') go too (member_group proves them the member's).
export const STOP = `${LIB}
pid=$1 start=$2 spawn=$3 cell=$4 ms=$5
member_group "$pid" "$start" "$spawn" "$cell" || exit 0
kill -s TERM -- "-$pid" 2>/dev/null || kill -s TERM "$pid" 2>/dev/null
n=$((ms / 100))
while [ $n -gt 0 ]; do group_alive "$pid" || exit 0; sleep 0.1; n=$((n - 1)); done
kill -s KILL -- "-$pid" 2>/dev/null || kill -s KILL "$pid" 2>/dev/null
n=100
while [ $n -gt 0 ]; do group_alive "$pid" || exit 0; sleep 0.05; n=$((n - 1)); done
exit 4`;

// Whether a member's leader lives: args PID START SPAWN CELL. Prints 1 or 0.
export const ALIVE = `${LIB}
if owns "$1" "$2" "$3" "$4"; then echo 1; else echo 0; fi`;

// Signal members' groups: args SIG then per member PID START SPAWN CELL. Prints how many. A group
// whose leader has exited is signalled too (member_group proves what is left in it the member's):
// a freeze must stop the children a leader left behind, or they write during the checkpoint.
export const SIGNAL = `${LIB}
sig=$1; shift
c=0
while [ $# -ge 4 ]; do
  if member_group "$1" "$2" "$3" "$4"; then kill -s "$sig" -- "-$1" 2>/dev/null && c=$((c + 1)); fi
  shift 4
done
echo "$c"`;

// The apparent size of the regular files under the cell's DIRs (st_size, holes included, each inode
// once, never through a link), walked before the cell is frozen, as size.ts does here: args root
// NAME UID MAX DIR... Prints "over BYTES LARGEST" as soon as the sum passes MAX (BYTES a lower
// bound then), else "size BYTES LARGEST". No file name is printed (a name can hold a newline).
export const SIZE = `${LIB}
root=$(expand_root "$1"); name=$2 uid=$3 max=$4; shift 4
d="$root/$name.$uid"
[ -d "$d" ] || { echo "no cell tree at $d" >&2; exit 3; }
cd "$d" || exit 3
for x in "$@"; do [ -e "$x" ] || [ -h "$x" ] || continue; find -P "./$x" -type f -printf '%D:%i %n %s\\n'; done 2>/dev/null |
  awk -v max="$max" '$2 > 1 { if (seen[$1]++) next } { s += $3; if ($3 > big) big = $3 } s > max { over = 1; exit } END { printf "%s %.0f %.0f\\n", (over ? "over" : "size"), s, big }'`;

// Write the cell's tree as a tar on stdout: args root NAME UID DIR... The tar is made on the
// remote host first; its sha256 goes to stderr ("lazarus-sha256 HEX") for the copy to be checked.
export const TAR = `${LIB}
root=$(expand_root "$1"); name=$2 uid=$3; shift 3
d="$root/$name.$uid"
[ -d "$d" ] || { echo "no cell tree at $d" >&2; exit 3; }
t="$d/.lazarus/checkpoint.tmp.tar"
umask 077
for x in "$@"; do mkdir -p "$d/$x" || exit 3; done
tar --sort=name --blocking-factor=128 --format=posix --sparse --sparse-version=1.0 --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime -cf "$t" -C "$d" -- "$@" || { rm -f "$t"; exit 3; }
sum=$(sha256sum < "$t") || exit 3
cat "$t" || exit 3
rm -f "$t"
echo "lazarus-sha256 \${sum%% *}" >&2`;

// Receive a checkpoint's tar on stdin and put its dirs in place: args root NAME UID SHA256 DIR...
// The tar is stored, checked against SHA256, extracted into a staging dir, checked file by file
// (sha256sum -c lines on fd 3 are not used: the list comes after the tar, see RESTORE_CHECK), and
// only then swapped in dir by dir.
export const RECEIVE = `${LIB}
root=$(expand_root "$1"); name=$2 uid=$3 want=$4; shift 4
d="$root/$name.$uid"
umask 077
mkdir -p "$d/.lazarus" || exit 3
t="$d/.lazarus/restore.tmp.tar"
cat > "$t" || exit 3
sum=$(sha256sum < "$t") || exit 3
[ "\${sum%% *}" = "$want" ] || { rm -f "$t"; echo "the copy of the checkpoint does not match its sha256" >&2; exit 5; }
s="$d/.lazarus/restore.staging"
rm -rf "$s" && mkdir -p "$s" || exit 3
tar --no-same-owner -xf "$t" -C "$s" -- "$@" || { rm -rf "$s" "$t"; echo "tar failed" >&2; exit 3; }
rm -f "$t"
echo staged`;

// Check the staged files (sha256sum -c lines on stdin, paths relative to the staging dir) and
// swap the staged dirs in: args root NAME UID DIR...
export const RESTORE_SWAP = `${LIB}
root=$(expand_root "$1"); name=$2 uid=$3; shift 3
d="$root/$name.$uid"
s="$d/.lazarus/restore.staging"
[ -d "$s" ] || { echo "nothing staged" >&2; exit 3; }
( cd "$s" && sha256sum --quiet --strict -c - ) >&2 || { rm -rf "$s"; echo "a restored file does not match the manifest" >&2; exit 5; }
o="$d/.lazarus/restore.old"
rm -rf "$o" && mkdir -p "$o" || exit 3
for x in "$@"; do
  [ -e "$d/$x" ] && { mv -f "$d/$x" "$o/$x" || exit 3; }
  mkdir -p "$s/$x" && mv -f "$s/$x" "$d/$x" || exit 3
done
rm -rf "$o" "$s"
echo restored`;

// The members' logs, to keep with the cell's records here: args root NAME UID CAP. For each regular
// file (never a link) logs/<name>.log or .log.N: a line "<name>", then a line of its last CAP bytes
// in base64, then "lazarus-logs-end" once all are sent.
export const LOGS = `${LIB}
root=$(expand_root "$1"); name=$2 uid=$3 cap=$4
d="$root/$name.$uid/logs"
[ -n "$name" ] && [ -n "$uid" ] || exit 3
if [ -d "$d" ] && [ ! -h "$d" ]; then
  for f in "$d"/*.log "$d"/*.log.[0-9]*; do
    [ -f "$f" ] && [ ! -h "$f" ] || continue
    printf '%s\n' "\${f##*/}"
    tail -c "$cap" -- "$f" | base64 | tr -d '\n'
    echo
  done
fi
echo lazarus-logs-end`;

// Remove a cell's tree: args root NAME UID.
export const SCRUB = `${LIB}
root=$(expand_root "$1"); name=$2 uid=$3
d="$root/$name.$uid"
[ -n "$name" ] && [ -n "$uid" ] || exit 3
rm -rf -- "$d" || exit 3
echo scrubbed`;
