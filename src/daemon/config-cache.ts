// The daemon's view of cells.d/: each file parsed once and kept until it changes (its inode, size,
// mtime or ctime, or those of a symlink's target), so one edit re-reads one file, whatever the
// number of cells. Files are read as loadConfig reads them (src/config/source.ts).
import { lstatSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import {
  Combiner,
  LoadScope,
  loadCellFile,
  salvageNames,
  type FileResult,
  type PortfolioFileResult,
} from "../config/load.js";
import { hasErrors, type Diagnostic } from "../config/diagnostics.js";
import type { Desired } from "../config/types.js";
import { configFiles, configFileKind } from "../config/files.js";
import { checkFileCredentials } from "../config/credentials.js";
import type { CredentialContext } from "../host/secrets.js";
import { hostSettings } from "../host/settings.js";
import { loadPortfolioFile } from "../portfolio/load.js";
import { isErrno } from "../util/errors.js";

interface Entry {
  sig: string; // what the file looked like when read (see signature)
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
  private readonly combiner = new Combiner(); // what an unchanged file contributes is not worked out again
  private dirProblem: PortfolioFileResult | undefined; // portfolios/ cannot be listed
  private refreshing: Promise<unknown> = Promise.resolve();

  // credentials: where credential values may come from; read again on every full refresh, so a
  // rotated secret (same file in cells.d/) is seen.
  constructor(
    private readonly configDir: string,
    private readonly credentials: () => Promise<CredentialContext> = async () => ({
      host: hostSettings(process.env),
      hostEnv: process.env,
    }),
  ) {}

  // Re-read the given files (relative names such as cells.d/a.yaml), or every file when omitted.
  // One refresh at a time, in call order: a full read still under way when an edit's own read
  // starts could otherwise store the file as it was before the edit, after it.
  refresh(only?: Iterable<string>): Promise<RefreshResult> {
    const files = only ? [...only] : undefined;
    const run = this.refreshing.then(() => this.refreshNow(files));
    this.refreshing = run.catch(() => undefined);
    return run;
  }

  private async refreshNow(only: string[] | undefined): Promise<RefreshResult> {
    let names: string[];
    const affected = new Set<string>();
    const changed: string[] = [];
    const scope = new LoadScope(); // what the files read by this refresh share
    if (only) names = [...only];
    else {
      const cells = await configFiles(this.configDir, "cells.d");
      scope.regular = cells.regular;
      const ports = await configFiles(this.configDir, "portfolios");
      if (JSON.stringify(ports.problem) !== JSON.stringify(this.dirProblem?.diagnostics[0])) {
        this.dirProblem = ports.problem
          ? { file: "portfolios", portfolios: [], diagnostics: [ports.problem] }
          : undefined;
        for (const name of this.current().desired.cells.keys()) affected.add(name);
        changed.push("portfolios");
      }
      names = [...cells.files, ...ports.files];
      const listed = new Set(names);
      for (const known of this.files.keys()) if (!listed.has(known)) names.push(known);
    }
    for (const rel of names) {
      const kind = configFileKind(rel);
      if (!kind) continue;
      const isPortfolio = kind === "portfolios";
      const old = this.files.get(rel);
      const sig = signature(path.join(this.configDir, rel));
      // A cell's python requirements and wheels live outside its file: on a full refresh (resync,
      // SIGHUP) a file declaring spec.runtime.python is read again even when it did not change.
      const readsMore = !only && old?.parsed?.cells.some((c) => c.python) === true;
      if (sig !== undefined && old?.sig === sig && !readsMore) continue;
      let entry: Entry | undefined;
      if (sig !== undefined && isPortfolio) {
        const portfolios = await loadPortfolioFile(this.configDir, rel);
        if (portfolios) entry = { sig, result: { file: rel, cells: [], diagnostics: [] }, portfolios };
      } else if (sig !== undefined) {
        const loaded = await loadCellFile(this.configDir, rel, scope);
        if (loaded) {
          const result = await checkFileCredentials(loaded.result, await this.credentials());
          entry = {
            sig,
            parsed: loaded.result,
            result,
            ...(hasErrors(result.diagnostics) && loaded.text !== undefined ? { text: loaded.text } : {}),
          };
        }
      }
      // A portfolio change concerns every agent it may apply to: all cells are looked at.
      if ((entry ?? old)?.portfolios) for (const name of this.current().desired.cells.keys()) affected.add(name);
      if (!entry) {
        if (old) {
          this.files.delete(rel);
          this.names(old).forEach((n) => affected.add(n));
          changed.push(rel);
        }
        continue;
      }
      // Re-read only for what lies outside it, and nothing changed: the cached view stays as it is.
      if (readsMore && old?.sig === sig && sameResult(old, entry)) continue;
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
    const seen = (r: FileResult): string =>
      JSON.stringify([r.cells.map((c) => c.credentialsValueDigest ?? null), r.diagnostics]);
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
      this.combined = this.combiner.combine(
        entries.filter((e) => !e.portfolios).map((e) => e.result),
        texts,
        [
          ...(this.dirProblem ? [this.dirProblem] : []),
          ...entries.flatMap((e) => (e.portfolios ? [e.portfolios] : [])),
        ],
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
    for (const e of this.files.values()) e.sig = "";
  }
}

const sameResult = (a: Entry, b: Entry): boolean =>
  JSON.stringify([a.parsed, a.result]) === JSON.stringify([b.parsed, b.result]);

// What a file looks like without reading it: undefined when it is gone. A symlink's target counts,
// and ctime too (a chmod that makes an unreadable file readable changes only that). Synchronous: a
// resync looks at every file of cells.d/ (a thousand, one cell each, in the README's layout), and
// a thread-pool round trip per file cost several times the lstat itself.
function signature(abs: string): string | undefined {
  const at = (st: { ino: number; mode: number; size: number; mtimeMs: number; ctimeMs: number }): string =>
    `${st.ino}:${st.mode}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  try {
    const lst = lstatSync(abs, { throwIfNoEntry: false });
    if (!lst) return undefined;
    if (!lst.isSymbolicLink()) return at(lst);
    let target: string;
    try {
      target = at(statSync(abs));
    } catch (err) {
      target = `error:${(err as NodeJS.ErrnoException).code ?? "?"}`;
    }
    return `${at(lst)}>${target}`;
  } catch (err) {
    if (isErrno(err, "ENOENT")) return undefined;
    return `error:${(err as NodeJS.ErrnoException).code ?? "?"}`;
  }
}
