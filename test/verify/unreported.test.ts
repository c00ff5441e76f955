// lazarus verify: a probe that ended early counts every check it did not report as failed. The
// probe itself runs only inside a sandbox or container (test/sandbox/verify.test.ts); here its
// output is cut short by hand, as a member that kills or starves the probe would cut it.
import { describe, expect, it } from "vitest";
import { parseProbe } from "../../src/verify/probe.js";
import { unreported } from "../../src/verify/verify.js";

const FULL = [
  "write-outside\tok\tx",
  "read-sibling\tok\tx",
  "read-other-home\tok\tx",
  "read-state-dir\tok\tx",
  "env\tnames\tHOME PATH",
  "see-host-process\tok\tx",
  "signal-host-process\tok\tx",
  "host-loopback\tok\tx",
  "tmp-residue\tok\tx",
  "pid-limit\tok\tx",
].join("\n");

describe("verify: an unfinished probe", () => {
  it("passes nothing it did not report", () => {
    expect(unreported(parseProbe(FULL), "agent:a", false, { exitCode: 0, stderr: "" })).toEqual([]);
    const cut = FULL.split("\n").slice(0, 3).join("\n"); // killed after three checks
    const missing = unreported(parseProbe(cut), "agent:a", false, {
      exitCode: 137,
      stderr: "sh: fork: Resource temporarily unavailable",
    });
    expect(missing.map((c) => c.check)).toEqual([
      "host environment",
      "read the state dir or another cell's credentials",
      "see a host or sibling process",
      "signal a host or sibling process",
      "exceed the pid limit",
      "reach a server on the host's loopback",
      "find residue in /tmp or /dev/shm",
    ]);
    expect(missing.every((c) => !c.ok && c.member === "agent:a")).toBe(true);
    expect(missing[0]?.detail).toBe(
      "the probe ended before reporting it (exit 137: sh: fork: Resource temporarily unavailable)",
    );
  });

  it("does not ask for the loopback check of a cell on the host network (it is reported apart)", () => {
    const noLoopback = FULL.split("\n")
      .filter((l) => !l.startsWith("host-loopback"))
      .join("\n");
    expect(unreported(parseProbe(noLoopback), "agent:a", true, { exitCode: 0, stderr: "" })).toEqual([]);
    expect(
      unreported(parseProbe(noLoopback), "agent:a", false, { exitCode: 0, stderr: "" }).map((c) => c.check),
    ).toEqual(["reach a server on the host's loopback"]);
  });
});
