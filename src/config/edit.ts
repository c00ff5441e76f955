// Edits of one cell in a cells.d/ file, as the operator verbs (summon, team, invite, close,
// destroy) make them. The file is read with the yaml package's Document API; each edit is a splice
// of the file's text at the positions of the nodes it changes, so every other byte (comments, key
// order, quoting, alignment, the other documents of the file) stays as it was. When a splice does
// not fit the file's layout, the one edited document is re-rendered by the Document API instead
// (its comments and key order kept). Either way the result is loaded again and must declare
// exactly the expected cells, or nothing is returned. Pure: no I/O.
import {
  Document,
  isMap,
  isScalar,
  isSeq,
  parseAllDocuments,
  stringify,
  type Node,
  type Pair,
  type YAMLMap,
  type YAMLSeq,
} from "yaml";
import { canonicalJson } from "./digest.js";
import { hasErrors, type Diagnostic } from "./diagnostics.js";
import { loadFileText } from "./load.js";
import { LazarusError } from "../util/errors.js";

export interface NewMember {
  identity: string;
  role: string;
  command?: string[];
}

export type CellEdit =
  | { op: "set"; key: "state" | "grace"; value: string } // a plain scalar of spec
  | { op: "add-member"; member: NewMember }
  | { op: "remove-member"; identity: string };

// The plain YAML of a scalar, quoted only when it must be.
export function yamlScalar(value: string): string {
  return stringify(value, { lineWidth: 0 }).trimEnd();
}

// A command as a flow sequence of JSON strings (JSON is YAML), the way the examples write it.
function flowCommand(command: readonly string[]): string {
  return `[${command.map((c) => JSON.stringify(c)).join(", ")}]`;
}

// The text of a new cell file: one document, the fields the operator gave, nothing defaulted.
export function newCellText(o: {
  name: string;
  project: string;
  owner: string;
  backend?: string;
  ttl?: string;
  members: NewMember[];
  comment?: string;
}): string {
  const lines = [
    ...(o.comment ? [`# ${o.comment}`] : []),
    "apiVersion: lazarus/v1",
    "kind: Cell",
    "metadata:",
    `  name: ${o.name}`,
    "spec:",
    `  project: ${yamlScalar(o.project)}`,
    `  owner: ${yamlScalar(o.owner)}`,
    ...(o.backend ? [`  backend: ${yamlScalar(o.backend)}`] : []),
    ...(o.ttl ? [`  ttl: ${yamlScalar(o.ttl)}`] : []),
    "  members:",
    ...o.members.flatMap((m) => memberLines(m, "    - ", "      ")),
  ];
  return `${lines.join("\n")}\n`;
}

function memberLines(m: NewMember, first: string, rest: string): string[] {
  return [
    `${first}identity: ${yamlScalar(m.identity)}`,
    `${rest}role: ${yamlScalar(m.role)}`,
    ...(m.command ? [`${rest}command: ${flowCommand(m.command)}`] : []),
  ];
}

function flowMember(m: NewMember): string {
  return `{identity: ${yamlScalar(m.identity)}, role: ${yamlScalar(m.role)}${m.command ? `, command: ${flowCommand(m.command)}` : ""}}`;
}

// The raw members of the cell, as the edit sees them.
export interface MemberView {
  identity: string;
  role: string;
}

export interface EditResult {
  text: string; // the whole file after the edit
  how: "splice" | "document"; // splice: only the changed bytes; document: the one document re-rendered
}

type Splice = { at: number; end: number; insert: string };

const lineStart = (text: string, i: number): number => text.lastIndexOf("\n", i - 1) + 1;

// The documents of a file with node positions (the file has loaded already; these are its nodes).
function documents(text: string): Document.Parsed[] {
  return parseAllDocuments(text, { version: "1.2", keepSourceTokens: false }) as Document.Parsed[];
}

function cellDocIndex(docs: Document.Parsed[], name: string): number {
  return docs.findIndex((d) => d.get("kind") === "Cell" && d.getIn(["metadata", "name"]) === name);
}

// The members of the named cell in a file's text.
export function cellMembers(text: string, name: string): MemberView[] {
  const docs = documents(text);
  const doc = docs[cellDocIndex(docs, name)];
  const value = doc?.toJS() as { spec?: { members?: MemberView[] } } | undefined;
  return value?.spec?.members ?? [];
}

// The value of a key of spec in the named cell (undefined when it is not written).
export function specValue(text: string, name: string, key: string): unknown {
  const docs = documents(text);
  return docs[cellDocIndex(docs, name)]?.getIn(["spec", key]);
}

// Apply an edit to a plain value of the cell (what the edited file must load as).
function editValue(cell: Record<string, unknown>, e: CellEdit): void {
  const spec = cell.spec as Record<string, unknown> & { members: Record<string, unknown>[] };
  if (e.op === "set") spec[e.key] = e.value;
  else if (e.op === "add-member")
    spec.members.push({
      identity: e.member.identity,
      role: e.member.role,
      ...(e.member.command ? { command: [...e.member.command] } : {}),
    });
  else spec.members = spec.members.filter((m) => m.identity !== e.identity);
}

// The splices that make the edit in place, or undefined when the layout is not one they handle.
function splices(text: string, doc: Document.Parsed, e: CellEdit): Splice[] | undefined {
  const eol = text.includes("\r\n") ? "\r\n" : "\n"; // a file written with CRLF gets CRLF lines
  const spec = doc.get("spec", true);
  if (!isMap(spec)) return undefined;
  const pairOf = (map: YAMLMap, key: string): Pair | undefined =>
    map.items.find((p) => isScalar(p.key) && p.key.value === key);
  const members = pairOf(spec, "members");
  const seq = members?.value;
  if (!members || !isSeq(seq) || !seq.range) return undefined;
  if (e.op === "set") {
    const pair = pairOf(spec, e.key);
    if (pair) {
      const v = pair.value;
      if (!isScalar(v) || !v.range) return undefined;
      return [{ at: v.range[0], end: v.range[1], insert: yamlScalar(e.value) }];
    }
    // A new key goes just before members: (and before the comment lines right above it).
    const keyNode = members.key as Node;
    if (!keyNode.range) return undefined;
    const at = keyNode.range[0];
    if (spec.flow) return [{ at, end: at, insert: `${e.key}: ${yamlScalar(e.value)}, ` }];
    const ls = lineStart(text, at);
    const indent = text.slice(ls, at);
    if (!/^ *$/.test(indent)) return undefined;
    let pos = ls;
    while (pos > 0) {
      const prev = lineStart(text, pos - 1);
      if (!/^ *#/.test(text.slice(prev, pos))) break;
      pos = prev;
    }
    return [{ at: pos, end: pos, insert: `${indent}${e.key}: ${yamlScalar(e.value)}${eol}` }];
  }
  const items = seq.items as Node[];
  if (seq.flow) {
    const close = seq.range[1] - 1;
    if (text[close] !== "]") return undefined;
    if (e.op === "add-member") {
      if (items.length === 0) return [{ at: close, end: close, insert: flowMember(e.member) }];
      let pos = close;
      while (pos > 0 && /\s/.test(text[pos - 1] as string)) pos--;
      if (text[pos - 1] === ",") return undefined;
      return [{ at: pos, end: pos, insert: `, ${flowMember(e.member)}` }];
    }
    const i = items.findIndex((n) => isMap(n) && n.get("identity") === e.identity);
    const item = items[i];
    if (!item?.range) return undefined;
    if (items.length === 1) return [{ at: seq.range[0], end: seq.range[1], insert: "[]" }];
    const next = items[i + 1];
    const prev = items[i - 1];
    if (next?.range) return [{ at: item.range[0], end: next.range[0], insert: "" }];
    if (prev?.range) return [{ at: prev.range[1], end: item.range[1], insert: "" }];
    return undefined;
  }
  // A block sequence: every item starts on its own "- " line.
  const dashOf = (n: Node | undefined): string | undefined => {
    if (!n?.range) return undefined;
    const prefix = text.slice(lineStart(text, n.range[0]), n.range[0]);
    return /^ *- +$/.test(prefix) ? prefix : undefined;
  };
  if (e.op === "add-member") {
    const last = items[items.length - 1];
    const dash = dashOf(items[0]);
    if (!last?.range || dash === undefined || dashOf(last) === undefined) return undefined;
    const at = last.range[2];
    const lines = memberLines(e.member, dash, " ".repeat(dash.length));
    return [{ at, end: at, insert: `${text[at - 1] === "\n" ? "" : eol}${lines.join(eol)}${eol}` }];
  }
  const i = items.findIndex((n) => isMap(n) && n.get("identity") === e.identity);
  const item = items[i];
  if (!item?.range || dashOf(item) === undefined) return undefined;
  if (items.length > 1) return [{ at: lineStart(text, item.range[0]), end: item.range[2], insert: "" }];
  // The only member: a block sequence cannot be empty, so members: becomes [].
  const keyEnd = (members.key as Node).range?.[1];
  if (keyEnd === undefined || text[keyEnd] !== ":") return undefined;
  const end = seq.range[2];
  return [{ at: keyEnd + 1, end, insert: ` []${text[end - 1] === "\n" ? eol : ""}` }];
}

function applySplices(text: string, list: Splice[]): string {
  let out = text;
  for (const s of [...list].sort((a, b) => b.at - a.at)) out = out.slice(0, s.at) + s.insert + out.slice(s.end);
  return out;
}

// The edited document re-rendered by the Document API, spliced where the document was.
function viaDocument(text: string, doc: Document.Parsed, e: CellEdit): string | undefined {
  const contents = doc.contents;
  if (!contents?.range) return undefined;
  const copy = doc.clone();
  if (e.op === "set") copy.setIn(["spec", e.key], e.value);
  else if (e.op === "add-member")
    copy.addIn(
      ["spec", "members"],
      copy.createNode({
        identity: e.member.identity,
        role: e.member.role,
        ...(e.member.command ? { command: e.member.command } : {}),
      }),
    );
  else {
    const seq = copy.getIn(["spec", "members"], true) as YAMLSeq;
    seq.items = seq.items.filter((n) => !(isMap(n) && n.get("identity") === e.identity));
  }
  // Only the contents: the document's own comment before it and its --- marker stay in the text.
  const body = new Document(copy.contents, { version: "1.2" }).toString({ lineWidth: 0 });
  const end = contents.range[2];
  return (
    text.slice(0, contents.range[0]) +
    body +
    (text[end - 1] === "\n" || end >= text.length ? "" : "\n") +
    text.slice(end)
  );
}

// The plain values of every document of a file (what it loads as), or diagnostics when it does not load.
function loaded(rel: string, text: string): { values: string[]; diagnostics: Diagnostic[] } {
  const r = loadFileText(rel, text);
  if (hasErrors(r.diagnostics)) return { values: [], diagnostics: r.diagnostics };
  return { values: documents(text).map((d) => canonicalJson(d.toJS())), diagnostics: r.diagnostics };
}

// Edit the named cell of a file's text. The file must load before (the caller checked); the result
// loads, and differs from the file only in that cell, as the edit says.
export function editCellText(rel: string, text: string, name: string, e: CellEdit): EditResult {
  const docs = documents(text);
  const index = cellDocIndex(docs, name);
  const doc = docs[index];
  if (!doc) throw new LazarusError("NO_SUCH_CELL", `${rel} does not declare cell ${name}`);
  const expected = docs.map((d) => d.toJS() as Record<string, unknown>);
  editValue(expected[index] as Record<string, unknown>, e);
  const want = expected.map((v) => canonicalJson(v));
  const matches = (candidate: string): Diagnostic[] | true => {
    const got = loaded(rel, candidate);
    if (hasErrors(got.diagnostics)) return got.diagnostics;
    return got.values.length === want.length && got.values.every((v, i) => v === want[i]) ? true : [];
  };
  const list = splices(text, doc, e);
  const spliced = list ? applySplices(text, list) : undefined;
  let problems: Diagnostic[] = [];
  if (spliced !== undefined) {
    const ok = matches(spliced);
    if (ok === true) return { text: spliced, how: "splice" };
    problems = ok;
  }
  const rendered = viaDocument(text, doc, e);
  if (rendered !== undefined) {
    const ok = matches(rendered);
    if (ok === true) return { text: rendered, how: "document" };
    if (problems.length === 0) problems = ok;
  }
  // Both ways load with errors: the edit itself is what the loader refuses (e.g. a guest without
  // policy.allowGuests). Say why, at the line of the edited file.
  if (problems.length > 0) throw new EditRefused(rel, problems);
  throw new LazarusError(
    "EDIT_FAILED",
    `could not edit cell ${name} in ${rel} without changing anything else; edit the file by hand`,
  );
}

// The edit would make the file fail to load; nothing is written.
export class EditRefused extends LazarusError {
  constructor(
    readonly file: string,
    readonly diagnostics: Diagnostic[],
  ) {
    super("EDIT_REFUSED", `the change would make ${file} fail to load, so nothing was written`);
  }
}
