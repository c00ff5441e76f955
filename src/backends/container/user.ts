// spec.container.user: who members run as inside the container. The engine runs without a user
// namespace, so the uid and gid inside are the host's: the engine always gets an explicit uid:gid
// (a uid alone would run with the engine's fallback gid 0, the host's root group), and a uid or
// gid that is root, another cell's (LAZARUS_UID_RANGE) or a host account's is refused at its line.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Diagnostic } from "../../config/diagnostics.js";
import type { DesiredCell, SourcePos } from "../../config/types.js";
import { uidRange } from "../../host/settings.js";
import { which } from "../../util/which.js";

export interface ContainerUser {
  uid: number;
  gid: number;
}

// "uid" or "uid:gid" as the engine's --user: a uid alone runs with the gid of the same number.
export function parseContainerUser(user: string): ContainerUser {
  const [uid, gid] = user.split(":").map(Number) as [number, number | undefined];
  return { uid, gid: gid ?? uid };
}

type Database = "passwd" | "group";

// The name of the host's account (passwd) or group with that id, or undefined: NSS first
// (getent sees LDAP and the like), /etc/passwd or /etc/group where getent is missing.
export function hostEntry(db: Database, id: number): string | undefined {
  const getent = which("getent", process.env.PATH, ["/usr/bin", "/bin"]);
  if (getent) {
    const r = spawnSync(getent, [db, String(id)], {
      encoding: "utf8",
      timeout: 10_000,
      stdio: ["ignore", "pipe", "ignore"],
    });
    if (r.status === 0) return String(r.stdout).split(":")[0] || String(id);
    if (r.status === 2) return undefined; // getent: not found
  }
  try {
    const line = readFileSync(`/etc/${db}`, "utf8")
      .split("\n")
      .find((l) => Number(l.split(":")[2]) === id && l.split(":")[2] !== "");
    return line?.split(":")[0];
  } catch {
    return undefined;
  }
}

// Why this uid or gid may not be a member's inside a container, or undefined.
function refusal(kind: "uid" | "gid", id: number, env: NodeJS.ProcessEnv): string | undefined {
  if (id === 0)
    return `${kind} 0 is root: without a user namespace, root in the container is the host's root (capabilities dropped, but it owns what root owns)`;
  const range = uidRange(env);
  if (id >= range.first && id <= range.last)
    return `${kind} ${id} is in LAZARUS_UID_RANGE (${range.first}-${range.last}): that ${kind} is another cell's own, or will be`;
  const name = hostEntry(kind === "uid" ? "passwd" : "group", id);
  if (name !== undefined)
    return `${kind} ${id} is the host's ${kind === "uid" ? "account" : "group"} ${name}: members would own its files and act as it`;
  return undefined;
}

// Diagnostics of spec.container.user, whoever committed it.
export function containerUserDiagnostics(
  cell: DesiredCell,
  at: (p: (string | number)[]) => SourcePos,
  env: NodeJS.ProcessEnv = process.env,
): Diagnostic[] {
  const user = cell.container?.user;
  if (user === undefined) return [];
  const { uid, gid } = parseContainerUser(user);
  const why = refusal("uid", uid, env) ?? refusal("gid", gid, env);
  if (!why) return [];
  return [
    {
      severity: "error",
      ...at(["spec", "container", "user"]),
      field: "spec.container.user",
      message: `user "${user}": ${why}`,
      hint: "remove user (members then run as the cell's own uid), or name a uid[:gid] that is not root, not in LAZARUS_UID_RANGE and no host account or group",
    },
  ];
}
