// What the egress member tests (sandbox, container) share: the probe a member runs, in shell, each
// `say KEY VALUE` adding a line KEY=VALUE (newlines folded to spaces) to $HOME/probe.tmp, renamed
// to probe.txt once all is said; its git part (ls-remote, clone, commit, push to git.test); the
// node program that speaks CONNECT itself; node's own fetch, told to use the proxy variables by
// undici's EnvHttpProxyAgent (Node 20's fetch reads no proxy variable: NODE_USE_ENV_PROXY comes with
// Node 24, and this is what docs/isolation.md tells a Node 20 agent to do); the bare repo the git
// server serves; and the probe file read back.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

// The probe: these `say` lines (and any other shell), then the file renamed, then `tail` (the
// member keeps running: exec sleep).
export function probeScript(lines: string[], tail: string): string {
  return [
    "",
    'P="$HOME/probe.tmp"; : > "$P"',
    String.raw`say() { printf '%s=%s\n' "$1" "$(echo "$2" | tr '\n' ' ')" >> "$P"; }`,
    ...lines,
    'mv "$P" "$HOME/probe.txt"',
    tail,
    "",
  ].join("\n");
}

// The probe's git lines: git_ls_remote (the refs of git.test's repo.git) and git_push ("exit=0"
// once a clone's commit "pushed from <where>" is pushed to main), trusting the certificate ca.
export function gitProbe(ca: string, where: string): string[] {
  return [
    `export GIT_SSL_CAINFO=${ca}`,
    'say git_ls_remote "$(git ls-remote "https://git.test:$GIT_PORT/repo.git" 2>&1 | cut -f2)"',
    'cd "$HOME" && git clone -q "https://git.test:$GIT_PORT/repo.git" work 2>&1 && cd work && ' +
      `echo "from ${where}" > pushed.txt && git add pushed.txt && ` +
      `git -c user.name=agent -c user.email=agent@cell commit -qm "pushed from ${where}" && ` +
      'say git_push "$(git push -q origin HEAD:main 2>&1; echo "exit=$?")"',
  ];
}

// node-probe.cjs HOST PORT: CONNECT HOST:PORT through $HTTPS_PROXY with node's http, then GET
// /from-node over https in the tunnel, trusting the certificate the JS expression ca reads;
// prints the body, "refused <status>" or "error <message>".
export function nodeProbe(ca: string): string {
  return String.raw`
const http = require("node:http"), https = require("node:https"), fs = require("node:fs");
const [host, port] = process.argv.slice(2);
const proxy = new URL(process.env.HTTPS_PROXY);
http.request({ host: proxy.hostname, port: proxy.port, method: "CONNECT", path: host + ":" + port })
  .on("connect", (res, socket) => {
    if (res.statusCode !== 200) { console.log("refused " + res.statusCode); return; }
    https.get({ host, port, path: "/from-node", socket, agent: false, ca: fs.readFileSync(${ca}) }, (r) => {
      let body = ""; r.on("data", (d) => (body += d)); r.on("end", () => console.log(body.trim()));
    });
  })
  .on("error", (e) => console.log("error " + e.message)).end();
`;
}

// fetch-probe.cjs URL: node's global fetch of URL, after undici's setGlobalDispatcher(new
// EnvHttpProxyAgent()) (the agent reads HTTPS_PROXY and NO_PROXY; the member trusts the test's
// certificate through NODE_EXTRA_CA_CERTS); prints the body, or "error " and why. Needs undici beside
// it: placeFetchProbe writes both into dir. An error is printed with its causes ("fetch failed: …:
// Proxy response (403) !== 200 when HTTP Tunneling").
const FETCH_PROBE = String.raw`
const { EnvHttpProxyAgent, setGlobalDispatcher } = require("undici");
setGlobalDispatcher(new EnvHttpProxyAgent());
fetch(process.argv[2]).then(
  async (r) => console.log(r.status === 200 ? (await r.text()).trim() : "status " + r.status),
  (e) => {
    const why = [];
    for (let c = e; c; c = c.cause) why.push(c.message);
    console.log("error " + why.join(": "));
  },
);
`;

// dir/fetch-probe.cjs and the undici it requires (dir/node_modules/undici, copied from this tree's).
export function placeFetchProbe(dir: string): void {
  const undici = path.dirname(createRequire(import.meta.url).resolve("undici/package.json"));
  cpSync(undici, path.join(dir, "node_modules", "undici"), { recursive: true });
  writeFileSync(path.join(dir, "fetch-probe.cjs"), FETCH_PROBE);
}

// The probe's fetch lines: fetch_listed (forge.test's /from-fetch) and fetch_unlisted (other.test),
// with fetch-probe.cjs in probeDir and the certificate at ca (a shell word).
export function fetchProbeLines(probeDir: string, ca: string): string[] {
  const run = `NODE_NO_WARNINGS=1 NODE_EXTRA_CA_CERTS=${ca} node ${probeDir}/fetch-probe.cjs`;
  return [
    `say fetch_listed "$(${run} "https://forge.test:$HTTPS_PORT/from-fetch" 2>&1)"`,
    `say fetch_unlisted "$(${run} "https://other.test:$HTTPS_PORT/from-fetch" 2>&1)"`,
  ];
}

// dir/repos/repo.git, bare, its main holding one commit ("seed"); returns dir/repos.
export function seedRepos(dir: string): string {
  const repos = path.join(dir, "repos");
  mkdirSync(repos);
  execFileSync("git", ["init", "-q", "--bare", "-b", "main", path.join(repos, "repo.git")]);
  const seed = path.join(dir, "seed");
  execFileSync("git", ["init", "-q", "-b", "main", seed]);
  writeFileSync(path.join(seed, "README"), "seed\n");
  execFileSync("git", ["-C", seed, "add", "README"]);
  execFileSync("git", ["-C", seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "seed"]);
  execFileSync("git", ["-C", seed, "push", "-q", path.join(repos, "repo.git"), "main"]);
  return repos;
}

// The probe's file as KEY → VALUE (trimmed).
export function readProbe(file: string): Record<string, string> {
  return Object.fromEntries(
    readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1).trim()]),
  );
}
