// Which members get a network namespace file: decided from the record alone, whatever the backend.
import { describe, expect, it } from "vitest";
import { needsBridge } from "../../src/bridge/member.js";
import type { CellRecord, MemberRecord } from "../../src/cells/record.js";

const member = (home: string, extra: Partial<MemberRecord> = {}): MemberRecord =>
  ({ identity: `agent:${home}`, home, ...extra }) as MemberRecord;
const rec = (network: CellRecord["network"], members: MemberRecord[]): Pick<CellRecord, "network" | "members"> => ({
  network,
  members,
});

describe("needsBridge", () => {
  it("every member of an egress cell (the proxy's door)", () => {
    expect(needsBridge(rec("egress", [member("a"), member("b")]), "b")).toBe(true);
  });

  it("a member that calls the model gateway without the host's network (the gateway's door)", () => {
    const r = rec("none", [member("a", { usesGateway: true }), member("b")]);
    expect(needsBridge(r, "a")).toBe(true);
    expect(needsBridge(r, "b")).toBe(false);
    expect(needsBridge(rec(undefined, [member("a", { usesGateway: true })]), "a")).toBe(true);
  });

  it("never a member with the host's network (it reaches the gateway on the host's 127.0.0.1)", () => {
    expect(needsBridge(rec("host", [member("a", { usesGateway: true })]), "a")).toBe(false);
  });
});
