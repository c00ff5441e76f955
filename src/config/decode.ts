// The text of a config file: strict UTF-8 (a UTF-8 byte order mark is dropped), never silently
// repaired. Invalid bytes, UTF-16 and characters YAML does not allow are problems at their line.
// Pure: no I/O.
import { isAscii } from "node:buffer";

export type Decoded = { text: string } | { line: number; col: number; problem: string; hint: string };

const FATAL = new TextDecoder("utf-8", { fatal: true });
const LENIENT = new TextDecoder("utf-8");
const SAVE_AS_UTF8 = "save the file as UTF-8";
// Characters outside YAML's printable set (YAML 1.2 §5.1): C0 controls other than tab, LF and CR,
// DEL, C1 controls other than NEL, and the non-characters U+FFFE and U+FFFF.
const NOT_PRINTABLE = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x84\x86-\x9f\ufffe\uffff]/;

// 1-based line and column of a string index.
export function lineCol(text: string, index: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf("\n"); i !== -1 && i < index; i = text.indexOf("\n", i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: index - start + 1 };
}

// Decode a file's bytes as UTF-8 YAML text, or say where and why it cannot be.
export function decodeYaml(bytes: Uint8Array): Decoded {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return {
      line: 1,
      col: 1,
      problem: "the file is UTF-16 (it starts with a UTF-16 byte order mark); Lazarus reads UTF-8 only",
      hint: SAVE_AS_UTF8,
    };
  }
  let text: string;
  try {
    // Plain ASCII (most config files) is valid UTF-8 with no byte order mark, and each byte is its
    // character: read it as such (a native check, then a one-byte string), not through the decoder.
    text = isAscii(bytes)
      ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1")
      : FATAL.decode(bytes);
  } catch {
    const at = firstInvalid(bytes);
    return { ...at, problem: "invalid UTF-8 (a byte sequence that is not a character)", hint: SAVE_AS_UTF8 };
  }
  const bad = NOT_PRINTABLE.exec(text);
  if (bad) {
    const code = `U+${bad[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
    const nul = bad[0] === "\0";
    return {
      ...lineCol(text, bad.index),
      problem: nul
        ? "a NUL byte (U+0000): YAML text cannot contain it"
        : `a control character ${code}: YAML text cannot contain it`,
      hint: nul
        ? "remove it; a file full of NUL bytes is often UTF-16 without a byte order mark: save it as UTF-8"
        : "remove it, or write it as an escape inside a double-quoted string",
    };
  }
  return { text };
}

// The line and column of the first invalid UTF-8 sequence: what lenient decoding turned into
// U+FFFD although the bytes there are not an encoded U+FFFD (EF BF BD).
function firstInvalid(bytes: Uint8Array): { line: number; col: number } {
  const text = LENIENT.decode(bytes);
  const bom = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  for (let i = text.indexOf("\ufffd"); i !== -1; i = text.indexOf("\ufffd", i + 1)) {
    const offset = bom + Buffer.byteLength(text.slice(0, i), "utf8");
    if (!(bytes[offset] === 0xef && bytes[offset + 1] === 0xbf && bytes[offset + 2] === 0xbd)) return lineCol(text, i);
  }
  return { line: 1, col: 1 };
}
