// The JSON Schemas in a real editor's language server: yaml-language-server (the server behind the
// VS Code YAML extension, coc-yaml, Neovim's yamlls, Helix...) driven over its stdio LSP protocol
// as an editor drives it: Content-Length framing, initialize, workspace/didChangeConfiguration
// with yaml.schemas, textDocument/didOpen, and the textDocument/publishDiagnostics it sends back.
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, cleanup, tempDir, waitFor } from "../helpers.js";

interface Diagnostic {
  range: { start: { line: number; character: number } };
  message: string;
  severity?: number;
}

class LspClient {
  private buffer = Buffer.alloc(0);
  private nextId = 1;
  private readonly pending = new Map<number, (result: unknown) => void>();
  readonly diagnostics = new Map<string, Diagnostic[][]>(); // uri → every publication, in order
  readonly stderr: string[] = [];
  settings: Record<string, unknown> = {}; // the editor's settings, by section ("yaml", "http"...)

  constructor(private readonly child: ChildProcess) {
    child.stdout?.on("data", (d: Buffer) => this.receive(d));
    child.stderr?.on("data", (d: Buffer) => this.stderr.push(d.toString()));
  }

  private send(message: object): void {
    const body = Buffer.from(JSON.stringify({ jsonrpc: "2.0", ...message }), "utf8");
    this.child.stdin?.write(Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, "ascii"), body]));
  }

  private receive(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const length = Number(/Content-Length: *(\d+)/i.exec(this.buffer.subarray(0, end).toString("ascii"))?.[1]);
      if (this.buffer.length < end + 4 + length) return;
      const msg = JSON.parse(this.buffer.subarray(end + 4, end + 4 + length).toString("utf8")) as {
        id?: number;
        method?: string;
        params?: { uri: string; diagnostics: Diagnostic[] };
        result?: unknown;
      };
      this.buffer = this.buffer.subarray(end + 4 + length);
      if (msg.method === "workspace/configuration" && msg.id !== undefined) {
        // The server pulls its settings, section by section, as VS Code answers it.
        const items = (msg.params as unknown as { items: { section?: string }[] }).items;
        this.send({ id: msg.id, result: items.map((i) => this.settings[i.section ?? ""] ?? null) });
      } else if (msg.method && msg.id !== undefined)
        this.send({ id: msg.id, result: null }); // another request from the server (registerCapability...)
      else if (msg.id !== undefined) this.pending.get(msg.id)?.(msg.result);
      else if (msg.method === "textDocument/publishDiagnostics" && msg.params) {
        const list = this.diagnostics.get(msg.params.uri) ?? [];
        list.push(msg.params.diagnostics);
        this.diagnostics.set(msg.params.uri, list);
      }
    }
  }

  request(method: string, params: object): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.send({ id, method, params });
    });
  }

  notify(method: string, params: object): void {
    this.send({ method, params });
  }

  open(file: string): string {
    const uri = pathToFileURL(file).href;
    this.notify("textDocument/didOpen", {
      textDocument: { uri, languageId: "yaml", version: 1, text: readFileSync(file, "utf8") },
    });
    return uri;
  }

  change(uri: string, version: number, text: string): void {
    this.notify("textDocument/didChange", { textDocument: { uri, version }, contentChanges: [{ text }] });
  }

  latest(uri: string): Diagnostic[] | undefined {
    return this.diagnostics.get(uri)?.at(-1);
  }
}

const SERVER = path.join(ROOT, "node_modules", "yaml-language-server", "bin", "yaml-language-server");
let dir: string;
let server: ChildProcess;
let lsp: LspClient;

beforeAll(async () => {
  // A project laid out as the repo is: schemas/ beside cells.d/ and portfolios/.
  dir = tempDir("lazarus-yamlls-");
  for (const d of ["schemas", "cells.d", "portfolios", "elsewhere"]) mkdirSync(path.join(dir, d));
  for (const f of ["cell.schema.json", "portfolio.schema.json"])
    copyFileSync(path.join(ROOT, "schemas", f), path.join(dir, "schemas", f));
  server = spawn(process.execPath, [SERVER, "--stdio"], { stdio: ["pipe", "pipe", "pipe"] });
  lsp = new LspClient(server);
  await lsp.request("initialize", {
    processId: process.pid,
    rootUri: pathToFileURL(dir).href,
    workspaceFolders: [{ uri: pathToFileURL(dir).href, name: "lazarus" }],
    capabilities: { workspace: { configuration: true }, textDocument: { publishDiagnostics: {} } },
  });
  lsp.notify("initialized", {});
  // What docs/configuration.md tells an editor (yaml.schemas); schemaStore off: no network.
  lsp.settings = {
    yaml: {
      validate: true,
      schemaStore: { enable: false },
      schemas: {
        [pathToFileURL(path.join(dir, "schemas", "cell.schema.json")).href]: ["cells.d/*.yaml", "cells.d/*.yml"],
        [pathToFileURL(path.join(dir, "schemas", "portfolio.schema.json")).href]: [
          "portfolios/*.yaml",
          "portfolios/*.yml",
        ],
      },
    },
  };
  lsp.notify("workspace/didChangeConfiguration", { settings: lsp.settings }); // the server answers by pulling them
}, 30_000);
afterAll(() => {
  server.kill("SIGKILL");
  cleanup(dir);
});

const lineOf = (text: string, needle: string): number => text.split("\n").findIndex((l) => l.includes(needle));

describe("the schemas in yaml-language-server", () => {
  it("finds nothing in the repo's own cells.d/ and portfolios/ files, and flags a misspelt field at its line", async () => {
    // Without their modelines: the yaml.schemas mapping alone must find the schema.
    const withoutModeline = (f: string): string =>
      readFileSync(path.join(ROOT, f), "utf8").replace(/^# yaml-language-server: .*\n/m, "");
    const good = [
      "cells.d/timmy-config.yaml",
      "cells.d/review-sandboxed.yaml",
      "portfolios/default.yaml",
      "portfolios/coder.yaml",
    ].map((f) => {
      expect(withoutModeline(f)).not.toContain("yaml-language-server");
      writeFileSync(path.join(dir, f), withoutModeline(f));
      return lsp.open(path.join(dir, f));
    });
    const badText = withoutModeline("cells.d/timmy-config.yaml").replace(/^(\s+)ttl: /m, "$1tll: ");
    expect(badText).toContain("tll: ");
    writeFileSync(path.join(dir, "cells.d/bad.yaml"), badText);
    const bad = lsp.open(path.join(dir, "cells.d/bad.yaml"));
    // Each file's verdict arrives on its own (the server validates asynchronously, in no promised
    // order): wait for the bad file's diagnostics and for a verdict on every good file.
    await waitFor(
      () => (lsp.latest(bad)?.length ?? 0) > 0 && good.every((uri) => lsp.latest(uri) !== undefined),
      20_000,
    ).catch(() => {
      throw new Error(
        `no verdict for ${[bad, ...good].filter((u) => lsp.latest(u) === undefined).join(", ") || "the bad file"}; server stderr: ${lsp.stderr.join("")}`,
      );
    });
    for (const uri of good) expect({ uri, diagnostics: lsp.latest(uri) }).toEqual({ uri, diagnostics: [] });
    // ...and that silence is the schema's verdict, not the absence of one: a stray top-level field
    // in each of those files is flagged at its line.
    for (const [i, uri] of good.entries()) {
      const text = `${readFileSync(fileURLToPath(uri), "utf8")}stray: 1\n`;
      lsp.change(uri, 2, text);
      await waitFor(() => (lsp.latest(uri)?.length ?? 0) > 0, 20_000);
      expect(
        (lsp.latest(uri) as Diagnostic[]).map((d) => d.range.start.line),
        `file ${i}`,
      ).toEqual([lineOf(text, "stray: 1")]);
    }
    const diags = lsp.latest(bad) as Diagnostic[];
    expect(diags).toHaveLength(1);
    expect(diags[0]?.message).toMatch(/tll/);
    expect(diags[0]?.range.start.line).toBe(lineOf(badText, "tll: "));
  });

  it("the modeline (# yaml-language-server: $schema=...) works outside cells.d/ too", async () => {
    const text = [
      "# yaml-language-server: $schema=../schemas/cell.schema.json",
      "apiVersion: lazarus/v1",
      "kind: Cell",
      "metadata:",
      "  name: modeline",
      "spec:",
      "  project: Org/repo#1",
      "  owner: human:alexander",
      "  backend: sandboxx",
      "  members: []",
      "",
    ].join("\n");
    writeFileSync(path.join(dir, "elsewhere/plain.yaml"), text.replace(/^# yaml-language-server: .*\n/, "")); // no modeline, not in cells.d/: no schema
    writeFileSync(path.join(dir, "elsewhere/cell.yaml"), text);
    const plain = lsp.open(path.join(dir, "elsewhere/plain.yaml"));
    const uri = lsp.open(path.join(dir, "elsewhere/cell.yaml"));
    await waitFor(() => (lsp.latest(uri)?.length ?? 0) > 0, 20_000);
    expect(lsp.latest(plain)).toEqual([]);
    const lines = (lsp.latest(uri) as Diagnostic[]).map((d) => d.range.start.line);
    expect(lines).toContain(lineOf(text, "backend: sandboxx"));
  });
});
