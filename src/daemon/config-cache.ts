// The daemon's view of cells.d/: each file parsed once and kept until its size or mtime changes,
// so one edit re-reads one file, whatever the number of cells.
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { combine, loadFileText, loadPortfolioText, salvageNames, type FileResult, type PortfolioFileResult } from "../config/load.js";
import { hasErrors, type Diagnostic } from "../config/diagnostics.js";
import type { Desired } from "../config/types.js";
import { configFiles, configFileKind } from "../config/files.js";
import { checkFileCredentials } from "../config/credentials.js";
import type { CredentialContext } from "../host/secrets.js";
import { hostSettings } from "../host/settings.js";

interface Entry {
  size: number;
  mtimeMs: number;
  parsed?: FileResult; // a cells.d/ file as parsed, before its credentials were checked
  result: FileResult;
  portfolios?: PortfolioFileResult; // for a file under portfolios/
  text?: string; // kept only for a broken file, to salvage the names it still declares
}

export interface RefreshResult {
  affected: Set<string>; // cells declared (before or after) by the files that changed
  changed: string[]; // the files re-read or dropped
}

export class ConfigCache {
  private readonly files = new Map<string, Entry>();
  private combined: { desired: Desired; diagnostics: Diagnostic[] } | undefined;

  // credentials: where credential values may come from; read again on every full refresh, so a
  // rotated secret (same file in cells.d/) is seen.
  constructor(
    private readonly configDir: string,
    private readonly credentials: () => Promise<CredentialContext> = async () => ({ host: hostSettings(process.env), hostEnv: process.env }),
  ) {}

  // Re-read the given files (relative names such as cells.d/a.yaml), or every file when omitted.
  async refresh(only?: Iterable<string>): Promise<RefreshResult> {
    let names: string[];
    if (only) names = [...only];
    else {
      names = [...(await configFiles(this.configDir, "cells.d")), ...(await configFiles(this.configDir, "portfolios"))];
      const listed = new Set(names);
      for (const known of this.files.keys()) if (!listed.has(known)) names.push(known);
    }
    const affected = new Set<string>();
    const changed: string[] = [];
    for (const rel of names) {
      const kind = configFileKind(rel);
      if (!kind) continue;
      const isPortfolio = kind === "portfolios";
      const abs = path.join(this.configDir, rel);
      const old = this.files.get(rel);
      let st;
      try {
        st = await stat(abs);
      } catch {
        st = undefined;
      }
      if (!st) {
        if (old) {
          if (old.portfolios) for (const name of this.current().desired.cells.keys()) affected.add(name);
          this.files.delete(rel);
          this.names(old).forEach((n) => affected.add(n));
          changed.push(rel);
        }
        continue;
      }
      if (old && old.size === st.size && old.mtimeMs === st.mtimeMs) continue;
      const text = await readFile(abs, "utf8");
      let entry: Entry;
      if (isPortfolio) {
        const portfolios = loadPortfolioText(rel, text);
        entry = { size: st.size, mtimeMs: st.mtimeMs, result: { file: rel, cells: [], diagnostics: [] }, portfolios };
        // A portfolio change concerns every agent it may apply to: all cells are looked at.
        for (const name of this.current().desired.cells.keys()) affected.add(name);
      } else {
        const parsed = loadFileText(rel, text);
        const result = await checkFileCredentials(parsed, await this.credentials());
        entry = { size: st.size, mtimeMs: st.mtimeMs, parsed, result, ...(hasErrors(result.diagnostics) ? { text } : {}) };
      }
      if (old) this.names(old).forEach((n) => affected.add(n));
      this.names(entry).forEach((n) => affected.add(n));
      this.files.set(rel, entry);
      changed.push(rel);
    }
    if (!only) await this.recheckCredentials(new Set(changed), affected, changed);
    if (changed.length > 0) this.combined = undefined;
    return { affected, changed };
  }

  // Check the credentials of every cached file again (skip: those just read): a secret that was
  // rotated, removed or replaced by a link changes its cells' desired state.
  private async recheckCredentials(skip: Set<string>, affected: Set<string>, changed: string[]): Promise<void> {
    const ctx = await this.credentials();
    const seen = (r: FileResult): string => JSON.stringify([r.cells.map((c) => c.credentialsValueDigest ?? null), r.diagnostics]);
    for (const [rel, e] of this.files) {
      if (skip.has(rel) || !e.parsed || !e.parsed.cells.some((c) => Object.keys(c.credentials).length > 0)) continue;
      const result = await checkFileCredentials(e.parsed, ctx);
      if (seen(result) === seen(e.result)) continue;
      e.result = result;
      if (!hasErrors(result.diagnostics)) delete e.text;
      else e.text ??= await readFile(path.join(this.configDir, rel), "utf8").catch(() => "");
      this.names(e).forEach((n) => affected.add(n));
      changed.push(rel);
    }
  }

  private names(e: Entry): string[] {
    return [...e.result.cells.map((c) => c.name), ...(e.text ? salvageNames(e.text) : [])];
  }

  // Desired state and diagnostics over every cached file (recomputed only after a change).
  current(): { desired: Desired; diagnostics: Diagnostic[] } {
    if (!this.combined) {
      const files = [...this.files.keys()].sort();
      const texts = new Map<string, string>();
      for (const [f, e] of this.files) if (e.text) texts.set(f, e.text);
      const entries = files.map((f) => this.files.get(f) as Entry);
      this.combined = combine(
        entries.filter((e) => !e.portfolios).map((e) => e.result),
        texts,
        entries.flatMap((e) => (e.portfolios ? [e.portfolios] : [])),
      );
    }
    return this.combined;
  }

  diagnosticsFor(files: string[]): Diagnostic[] {
    const set = new Set(files);
    return this.current().diagnostics.filter((d) => d.file !== undefined && set.has(d.file));
  }

  // Make the next refresh re-read every file, while the current view stays usable meanwhile
  // (dropping it would make a concurrent reconcile see an empty config and close every cell).
  invalidate(): void {
    for (const e of this.files.values()) e.mtimeMs = -1;
  }
}
