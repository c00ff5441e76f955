// A declared kubernetes cell as render input (lazarus render): the whole TTL as each member's
// deadline (an applied cell gets what is left of it, and a Sandbox its absolute shutdownTime,
// which render cannot know). Credentials: their values when given, else only their sources.
import type { DesiredCell } from "../../config/types.js";
import { egressTexts } from "../../egress/allow.js";
import { LazarusError } from "../../util/errors.js";
import type { RenderCell } from "./render.js";

export function desiredRenderCell(d: DesiredCell, values?: Record<string, string>): RenderCell {
  if (!d.kubernetes) throw new LazarusError("BUG", `cell ${d.name} has no spec.kubernetes`);
  const sources = Object.fromEntries(
    Object.entries(d.credentials).map(([n, s]) => [n, "env" in s ? `env:${s.env}` : `file:${s.file}`]),
  );
  return {
    name: d.name,
    network: d.network,
    ...(d.egress ? { egress: egressTexts(d.egress) } : {}),
    kubernetes: d.kubernetes,
    deadlineSeconds: Math.ceil(d.ttlMs / 1000),
    credentials: values ? { values } : { sources },
    members: d.members.map((m) => ({
      identity: m.identity,
      home: m.home,
      role: m.role,
      ...(m.command ? { command: m.command } : {}),
      env: m.env,
      resources: m.resources,
    })),
  };
}
