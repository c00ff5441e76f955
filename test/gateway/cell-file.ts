// A cell file the gateway reads (what `lazarus apply` writes), made by a test: each member gets a
// fresh token, kept in tokens under "cell/home"; netnsOf gives a member's network namespace file.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  gatewayCellsDir,
  mintToken,
  tokenDigest,
  type GatewayCellFile,
  type PortfolioDoc,
} from "../../src/gateway/state.js";

export interface CellFileAsk {
  state: string;
  tokens: Map<string, string>;
  cell: string;
  members: string[];
  portfolio: PortfolioDoc;
  extra?: Partial<GatewayCellFile>;
  netnsOf?: Record<string, string>;
}

export async function writeGatewayCell(a: CellFileAsk): Promise<void> {
  const file: GatewayCellFile = {
    formatVersion: 1,
    cell: a.cell,
    uid: `${a.cell}-uid`,
    members: a.members.map((home) => {
      const t = mintToken();
      a.tokens.set(`${a.cell}/${home}`, t);
      const netns = a.netnsOf?.[home];
      return {
        identity: `agent:${home}`,
        home,
        tokenDigest: tokenDigest(t),
        portfolio: a.portfolio,
        ...(netns ? { netns } : {}),
      };
    }),
    ...a.extra,
  };
  await mkdir(gatewayCellsDir(a.state), { recursive: true });
  await writeFile(path.join(gatewayCellsDir(a.state), `${a.cell}.json`), JSON.stringify(file));
}
