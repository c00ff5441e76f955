// Which portfolio an agent uses: its own `portfolio`, then one whose appliesTo.agents names it,
// then one whose appliesTo.taskClasses holds its task class, then `default`.
import { canonicalJson, sha256 } from "../config/digest.js";
import type { DesiredCell } from "../config/types.js";
import type { Portfolio, Resolved } from "./types.js";

export interface Who {
  agent: string; // the name after agent:
  portfolio?: string;
  taskClass?: string;
}

export function resolvePortfolio(portfolios: ReadonlyMap<string, Portfolio>, who: Who): Resolved | undefined {
  if (who.portfolio) {
    const p = portfolios.get(who.portfolio);
    return p ? { portfolio: p, selector: "member" } : undefined;
  }
  for (const p of portfolios.values())
    if (p.appliesTo.agents.includes(who.agent)) return { portfolio: p, selector: "agents" };
  if (who.taskClass)
    for (const p of portfolios.values())
      if (p.appliesTo.taskClasses.includes(who.taskClass)) return { portfolio: p, selector: "taskClasses" };
  const d = portfolios.get("default");
  return d ? { portfolio: d, selector: "default" } : undefined;
}

// The document written to a member's portfolio.json: everything an agent needs, nothing of where
// it was declared (so moving a portfolio between files changes nothing).
export function portfolioDocument(r: Resolved): Record<string, unknown> {
  const { source: _source, ...rest } = r.portfolio;
  return { formatVersion: 1, selector: r.selector, ...rest };
}

// Fill in each agent member's resolved portfolio (cleared while portfolio files are held).
// Documents and digests are computed once per (portfolio, selector), not once per member.
export function resolveAll(
  cells: Iterable<DesiredCell>,
  portfolios: ReadonlyMap<string, Portfolio>,
  held: boolean,
): void {
  const memo = new Map<string, NonNullable<DesiredCell["members"][number]["resolvedPortfolio"]>>();
  for (const c of cells) {
    for (const m of c.members) {
      delete m.resolvedPortfolio;
      if (held || !m.identity.startsWith("agent:")) continue;
      const r = resolvePortfolio(portfolios, {
        agent: m.home,
        ...(m.portfolio ? { portfolio: m.portfolio } : {}),
        ...(m.taskClass ? { taskClass: m.taskClass } : {}),
      });
      if (!r) continue;
      const key = `${r.portfolio.name}\0${r.selector}`;
      let resolved = memo.get(key);
      if (!resolved) {
        const document = portfolioDocument(r);
        resolved = {
          name: r.portfolio.name,
          selector: r.selector,
          digest: sha256(canonicalJson(document)).slice(0, 16),
          document,
        };
        memo.set(key, resolved);
      }
      m.resolvedPortfolio = resolved;
    }
  }
}
