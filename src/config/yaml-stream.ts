// YAML as Lazarus accepts it: the core schema without custom or YAML 1.1 tags, plain string keys
// (no mapping or sequence as a key), unique keys, nesting at most MAX_DEPTH deep, resolved aliases
// only. Every error and warning of the parser is a diagnostic at its line and column. Pure: no I/O.
import {
  Composer,
  Lexer,
  LineCounter,
  Parser,
  Schema,
  visit,
  type DocumentOptions,
  type ParseOptions,
  type SchemaOptions,
  type Document,
  type YAMLError,
} from "yaml";
import type { Diagnostic } from "./diagnostics.js";

export const MAX_DEPTH = 64;

// One schema for every document: the core tags, nothing else (no custom tags; resolveKnownTags
// off: no !!binary, !!set, !!omap, !!timestamp; merge off: << is an ordinary key). Shared, since
// yaml would otherwise build the same Schema for each of a fleet's thousands of documents; it is
// only read while composing (yaml adds to a schema's tags only for a known tag, and there are none).
const SCHEMA = new Schema({ schema: "core", resolveKnownTags: false, merge: false });

const OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  version: "1.2",
  schema: SCHEMA,
  resolveKnownTags: false,
  merge: false,
  stringKeys: true, // a collection used as a key is an error
  uniqueKeys: true,
  strict: true,
  prettyErrors: false,
};

export type Pos = (offset: number | undefined) => { line: number; col: number };

export interface YamlStream {
  docs: Document.Parsed[]; // the documents without errors (none when they went to `each`)
  diagnostics: Diagnostic[];
  pos: Pos;
  tooDeep: boolean; // the stream nests too deep: its one diagnostic says so, and nothing else counts
}

// The documents of a stream, each yielded as soon as it is composed: the lexer, the parser and the
// composer work one lexeme at a time (as yaml's own parseAllDocuments does). Nesting deeper than
// MAX_DEPTH is checked between lexemes, before anything recursive runs, so no input can overflow
// the stack: the stream then stops, and scan.tooDeep says where. scan.aliases: whether any alias
// (a lexeme starting with *, which is how the parser tells one) occurs at all.
interface Scan {
  tooDeep?: number;
  aliases: boolean;
}

// yaml's parser looks at process.env.LOG_TOKENS for every lexeme, and its composer at LOG_STREAM
// for every token (to print them to stdout when set). process.env is node's live view of the
// environment, each read a call into C++ (about 0.3–1 µs): 3,000 small cells are some 340,000
// lexemes, a tenth of a plan's time. While yaml's code runs (synchronously, nothing else), process.env
// is this empty object instead; the real one is back before each document is yielded, and so
// before any of Lazarus's code runs again. (A LOG_TOKENS or LOG_STREAM in Lazarus's environment
// so no longer mixes yaml's debugging lines into `plan --json`.)
const PARSER_ENV: NodeJS.ProcessEnv = Object.freeze({});

function* documents(text: string, lines: LineCounter, scan: Scan): Generator<Document.Parsed> {
  const parser = new Parser(lines.addNewLine);
  const composer = new Composer(OPTIONS);
  lines.addNewLine(0);
  const env = process.env;
  process.env = PARSER_ENV;
  try {
    for (const lexeme of new Lexer().lex(text)) {
      if (lexeme.charCodeAt(0) === 42 /* * */) scan.aliases = true;
      for (const token of parser.next(lexeme))
        for (const doc of composer.next(token)) {
          process.env = env;
          yield doc;
          process.env = PARSER_ENV;
        }
      if (parser.stack.length > MAX_DEPTH) {
        scan.tooDeep = parser.stack[parser.stack.length - 1]?.offset ?? 0;
        return;
      }
    }
    for (const token of parser.end())
      for (const doc of composer.next(token)) {
        process.env = env;
        yield doc;
        process.env = PARSER_ENV;
      }
    for (const doc of composer.end()) {
      process.env = env;
      yield doc;
      process.env = PARSER_ENV;
    }
  } finally {
    process.env = env;
  }
}

// A parser error or warning as a diagnostic.
function fromYamlError(file: string, e: YAMLError, pos: Pos, severity: "error" | "warning"): Diagnostic {
  const where = { file, ...pos(e.pos[0]) };
  const first = e.message.split("\n")[0] ?? "";
  if (e.code === "TAG_RESOLVE_FAILED") {
    const tag = /Unresolved tag: (.*)$/.exec(first)?.[1] ?? first;
    return {
      severity: "error",
      ...where,
      message: `YAML tag ${tag.replace(/^tag:yaml\.org,2002:/, "!!")} is not allowed: Lazarus reads plain YAML (strings, numbers, booleans, null, mappings, sequences)`,
      hint: "remove the tag",
    };
  }
  if (e.code === "NON_STRING_KEY")
    return {
      severity: "error",
      ...where,
      message: "YAML syntax: a mapping key must be a plain string, not a mapping or a sequence",
      hint: "write the key as a string",
    };
  return {
    severity,
    ...where,
    message: `YAML ${severity === "error" ? "syntax" : "warning"}: ${first}`,
    hint: severity === "error" ? "fix the YAML syntax" : "check the YAML",
  };
}

// Aliases whose anchor does not come before them, as errors.
function unresolvedAliases(file: string, doc: Document.Parsed, pos: Pos): Diagnostic[] {
  const out: Diagnostic[] = [];
  visit(doc, {
    Alias(_key, node) {
      if (node.resolve(doc) === undefined)
        out.push({
          severity: "error",
          file,
          ...pos(node.range?.[0]),
          message: `YAML alias *${node.source} has no anchor &${node.source} before it`,
          hint: "define the anchor first, or write the value out",
        });
    },
  });
  return out;
}

// Parse a stream of documents the way Lazarus accepts YAML. With each, every document without
// errors goes to it as soon as it is composed (and can be dropped at once: a file of a hundred
// cells then never holds a hundred syntax trees); when the stream turns out too deep, what each
// was given must be dropped too.
export function parseYamlStream(
  file: string,
  text: string,
  each?: (doc: Document.Parsed, pos: Pos) => void,
): YamlStream {
  const lines = new LineCounter();
  const pos: Pos = (offset) => (offset === undefined ? { line: 1, col: 1 } : lines.linePos(offset));
  const scan: Scan = { aliases: false };
  const diagnostics: Diagnostic[] = [];
  const docs: Document.Parsed[] = [];
  for (const doc of documents(text, lines, scan)) {
    if (scan.tooDeep !== undefined) break;
    const problems = [
      ...doc.errors.map((e) => fromYamlError(file, e, pos, "error")),
      ...doc.warnings.map((e) => fromYamlError(file, e, pos, "warning")),
    ];
    if (scan.aliases && !problems.some((d) => d.severity === "error"))
      problems.push(...unresolvedAliases(file, doc, pos));
    diagnostics.push(...problems);
    if (problems.some((d) => d.severity === "error")) continue;
    if (each) each(doc, pos);
    else docs.push(doc);
  }
  if (scan.tooDeep !== undefined) {
    // Only this is said of such a stream: what was composed before it is dropped.
    const message = `YAML nests deeper than ${MAX_DEPTH} levels`;
    return {
      docs: [],
      diagnostics: [
        {
          severity: "error",
          file,
          ...pos(scan.tooDeep),
          message,
          hint: "a Lazarus document needs only a few levels: flatten it",
        },
      ],
      pos,
      tooDeep: true,
    };
  }
  return { docs, diagnostics, pos, tooDeep: false };
}
