// The member's view, built as a pure function: what each role sees, and how.
import { describe, expect, it } from "vitest";
import { STAGE, bwrapArgs, sandboxArgv, stageView, type SandboxView } from "../../src/backends/sandbox/argv.js";

const tools = {
  setpriv: "/usr/bin/setpriv",
  bwrap: "/usr/bin/bwrap",
  unshare: "/usr/bin/unshare",
  nsenter: "/usr/bin/nsenter",
};

const base: SandboxView = {
  uid: 200001,
  gid: 200001,
  hostname: "c1",
  network: "none",
  cellDir: "/state/cells/c1",
  role: "executor",
  home: "ezra",
  hostRoot: { bin: { symlink: "usr/bin" }, lib: "dir" },
  extraBinds: [{ src: "/opt/tools", dest: "/opt/tools", dir: true }],
  portfolioDir: "/state/cells/c1/.lazarus/members/ezra",
  credentialsDir: "/state/cells/c1/.lazarus/secrets",
  env: { HOME: "/cell/home/ezra" },
  command: ["agent", "--run"],
  tmpfsBytes: 512 * 1024 * 1024,
};

// The (flag, source, destination) triples of every mount in the argv.
function mounts(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (["--bind", "--ro-bind", "--ro-bind-try"].includes(a)) out.push(`${a} ${args[i + 1]} ${args[i + 2]}`);
    if (a === "--") break;
  }
  return out;
}

describe("the sandbox view of a member", () => {
  it("bounds /tmp and /dev/shm: each tmpfs at most the member's memory limit", () => {
    const a = bwrapArgs(base);
    for (const dir of ["/tmp", "/dev/shm"]) {
      const i = a.findIndex((x, j) => x === "--tmpfs" && a[j + 1] === dir);
      expect(a.slice(i - 2, i), dir).toEqual(["--size", String(512 * 1024 * 1024)]);
    }
  });

  it.each([
    ["director", "--bind", "--bind", true],
    ["executor", "--bind", "--bind", true],
    ["substitute", "--bind", "--bind", true],
    ["observer", "--ro-bind", "--ro-bind", true],
    ["guest", "--ro-bind", undefined, false],
  ] as const)("a %s gets project %s and shared %s", (role, project, shared, creds) => {
    const m = mounts(bwrapArgs({ ...base, role }));
    expect(m).toContain(`${project} /state/cells/c1/project /cell/project`);
    if (shared) expect(m).toContain(`${shared} /state/cells/c1/shared /cell/shared`);
    else expect(m.some((x) => x.includes("/cell/shared"))).toBe(false);
    expect(m).toContain("--bind /state/cells/c1/home/ezra /cell/home/ezra");
    expect(m.some((x) => x.endsWith("/run/lazarus/secrets"))).toBe(creds);
  });

  it("shows no other home, no state dir and no shadow file, and mounts the operator's binds read-only", () => {
    const args = bwrapArgs(base);
    const m = mounts(args);
    expect(m.filter((x) => x.includes("/home/") && !x.includes("/home/ezra"))).toEqual([]);
    expect(m.filter((x) => x.includes("/.lazarus") && !x.includes("/members/ezra") && !x.includes("/secrets"))).toEqual(
      [],
    );
    expect(args.join(" ")).not.toMatch(/shadow|ssh|sudoers|npmrc|gitconfig/);
    expect(m).toContain("--ro-bind /opt/tools /opt/tools");
    expect(args.slice(args.indexOf("--") + 1)).toEqual(["agent", "--run"]);
    expect(args).toContain("--remount-ro");
    expect(args).toContain("--die-with-parent");
    expect(args).toContain("--clearenv");
  });

  it("unshares the network unless the cell opted into the host's", () => {
    expect(bwrapArgs(base)).toContain("--unshare-net");
    expect(bwrapArgs({ ...base, network: "host" })).not.toContain("--unshare-net");
    // a member with a namespace file joins it: nsenter before everything, and no namespace of bwrap's own
    const joined = { ...base, network: { netns: "/run/lazarus/netns/x/u.m" } };
    expect(bwrapArgs(joined)).not.toContain("--unshare-net");
    const argv = sandboxArgv(joined, tools, () => true);
    const at = argv.indexOf("--net=/run/lazarus/netns/x/u.m");
    expect(argv[at - 1]).toBe("/usr/bin/nsenter");
    expect(at).toBeLessThan(argv.indexOf("/usr/bin/setpriv"));
  });
});

describe("staging", () => {
  const closed = (p: string): boolean => !p.startsWith("/state"); // the state dir is closed to others

  it("binds the cell dir once under the stage when the state dir is closed to others, and every path bwrap opens follows", () => {
    const staged = stageView({ ...base, role: "observer" }, closed);
    expect(staged.mounts).toEqual([{ src: "/state/cells/c1", at: "d/0", dir: true }]);
    const sources = mounts(bwrapArgs(staged.view)).map((x) => x.split(" ")[1] as string);
    expect(sources.filter((src) => src.startsWith("/state"))).toEqual([]);
    expect(mounts(bwrapArgs(staged.view))).toContain(`--bind ${STAGE}/d/0/home/ezra /cell/home/ezra`);
    expect(mounts(bwrapArgs(staged.view))).toContain(`--ro-bind ${STAGE}/d/0/.lazarus/secrets /run/lazarus/secrets`);
    expect(mounts(bwrapArgs(staged.view))).toContain("--ro-bind /opt/tools /opt/tools");
  });

  it("binds the copies Lazarus makes of the member's files from their own dir, never from the cell dir", () => {
    const view = {
      ...base,
      portfolioDir: "/run/lazarus/view/d1/members/ezra",
      credentialsDir: "/run/lazarus/view/d1/secrets",
      configFilesDir: "/run/lazarus/view/d1/config/ezra",
    };
    const m = mounts(bwrapArgs(stageView(view, closed).view));
    expect(m).toContain("--ro-bind /run/lazarus/view/d1/members/ezra /cell/home/ezra/.lazarus");
    expect(m).toContain("--ro-bind /run/lazarus/view/d1/secrets /run/lazarus/secrets");
    expect(m).toContain("--ro-bind /run/lazarus/view/d1/config/ezra /run/lazarus/config");
    expect(m.filter((x) => x.includes("/.lazarus/") && x.startsWith("--ro-bind /state"))).toEqual([]);
    // closed to the cell's uid: staged on its own
    const staged = stageView(view, (p) => !p.startsWith("/run/lazarus/view"));
    expect(staged.mounts.map((x) => x.src)).toEqual([
      "/run/lazarus/view/d1/members/ezra",
      "/run/lazarus/view/d1/secrets",
      "/run/lazarus/view/d1/config/ezra",
    ]);
  });

  it("stages nothing when every path is reachable, and a closed extra bind on its own", () => {
    expect(stageView(base, () => true).mounts).toEqual([]);
    const staged = stageView(base, (p) => p !== "/opt/tools");
    expect(staged.mounts).toEqual([{ src: "/opt/tools", at: "d/0", dir: true }]);
    expect(mounts(bwrapArgs(staged.view))).toContain(`--ro-bind ${STAGE}/d/0 /opt/tools`);
  });
});
