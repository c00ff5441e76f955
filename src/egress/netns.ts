// Network namespaces made for container members of egress cells: a namespace file (as
// `unshare --net=FILE` makes it) that the engine joins with `--network ns:FILE`, with the
// forwarder to the member's proxy socket listening on its 127.0.0.1 (the engine's own
// --network none namespace cannot be entered before the member's command runs). The forwarder
// runs on the host, outside the container: the member can neither see nor kill it.
import { mkdirSync, readdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { execa } from "../util/exec.js";
import path from "node:path";
import { PERL_FORWARDER } from "./forwarder-perl.js";
import { MEMBER_PORT, SOCKET_NAME } from "./state.js";

export const NETNS_ROOT = "/run/lazarus/netns";

// The namespace file of one container (by its spawn or session id).
export function netnsFile(id: string): string {
  mkdirSync(NETNS_ROOT, { recursive: true, mode: 0o700 });
  return path.join(NETNS_ROOT, id);
}

// What the supervisor (or NETNS_WRAP) needs in its environment to make the namespace.
export function netnsEnv(file: string, socketDir: string): Record<string, string> {
  return {
    LAZARUS_EGRESS_NETNS: file,
    LAZARUS_EGRESS_FORWARDER: PERL_FORWARDER,
    LAZARUS_EGRESS_PORT: String(MEMBER_PORT),
    LAZARUS_EGRESS_SOCKET: path.join(socketDir, SOCKET_NAME),
  };
}

// Make the namespace with its forwarder (which ends when this shell does), run "$@", remove it.
export const NETNS_WRAP = [
  ': > "$LAZARUS_EGRESS_NETNS" && unshare --net="$LAZARUS_EGRESS_NETNS" -- perl -e "$LAZARUS_EGRESS_FORWARDER" "$LAZARUS_EGRESS_PORT" "$LAZARUS_EGRESS_SOCKET" $$ || { umount "$LAZARUS_EGRESS_NETNS"; rm -f "$LAZARUS_EGRESS_NETNS"; exit 125; } 2>/dev/null',
  '"$@"',
  "code=$?",
  '{ umount "$LAZARUS_EGRESS_NETNS"; rm -f "$LAZARUS_EGRESS_NETNS"; } 2>/dev/null',
  'exit "$code"',
].join("\n");

// Unmount and remove the namespace files whose names start with prefix (a cell's, at its close:
// what killed supervisors left).
export async function removeNetns(prefix: string): Promise<void> {
  let names: string[];
  try {
    names = readdirSync(NETNS_ROOT).filter((n) => n.startsWith(prefix));
  } catch {
    return;
  }
  for (const n of names) {
    await execa("umount", [path.join(NETNS_ROOT, n)], { reject: false, stdin: "ignore" });
    await rm(path.join(NETNS_ROOT, n), { force: true });
  }
}
