// Observing kubernetes cells: their members' pods, read once per observe from each cell's cluster.
// An unreachable cluster changes nothing: every member is taken as recorded, and says why.
import type { MemberRecord } from "../../cells/record.js";
import type { ObservedCell, ObservedMember } from "../../observe/types.js";
import { errorMessage } from "../../util/errors.js";
import { memberView, refresh } from "./kubernetes.js";

type ClusterView = { view(m: MemberRecord): { alive: boolean; exit?: ObservedMember["exit"] } } | { problem: string };

function clusterMember(m: ObservedMember, r: ClusterView): ObservedMember {
  if (!m.command) return { ...m, alive: false };
  if ("problem" in r)
    return {
      ...m,
      alive: m.status === "running" || m.status === "starting",
      ignored: [`cluster not read (${r.problem}); the member is taken as recorded`],
    };
  const v = r.view(m);
  return {
    ...m,
    alive: v.alive,
    ...(v.exit && (m.status === "running" || m.status === "starting") ? { exit: v.exit } : {}),
  };
}

// Live cells only: a closed cell's pods are gone (its members stay as recorded, not alive).
export async function observeKubernetes(cells: ObservedCell[]): Promise<void> {
  for (const c of cells) {
    const rec = c.record;
    if (c.place !== "cells" || !rec) continue;
    let view: ClusterView;
    try {
      await refresh([rec]);
      view = { view: (m) => memberView(rec, m) };
    } catch (err) {
      view = { problem: errorMessage(err) };
    }
    c.members = c.members.map((m) => clusterMember(m, view));
  }
}
