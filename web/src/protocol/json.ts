/**
 * The board's canonical JSON (docs/protocol.md §1), as Python writes it with
 * `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`:
 * keys in code-point order, no whitespace, integers exact (bigint: epochs and
 * timestamps reach 2^64), non-ASCII as UTF-8. And a strict parser that keeps integers
 * exact, so a parsed body re-encodes to the same bytes exactly when it was canonical.
 */

export type Json = string | bigint | number | boolean | null | Json[] | { [key: string]: Json };

export class JsonError extends Error {
  override name = "JsonError";
}

/** Python's order of strings: by code point (JavaScript's `<` compares UTF-16 units). */
export function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = (x[i]?.codePointAt(0) ?? 0) - (y[i]?.codePointAt(0) ?? 0);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

const SHORT: Record<string, string> = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" };

function encodeString(text: string): string {
  let out = '"';
  for (const ch of text) {
    const short = SHORT[ch];
    const code = ch.codePointAt(0) ?? 0;
    if (short !== undefined) out += short;
    else if (code < 0x20) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

export function canonical(value: Json): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new JsonError("only exact integers are written");
    return String(value);
  }
  if (typeof value === "string") return encodeString(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  const keys = Object.keys(value).sort(compareCodePoints);
  return `{${keys.map((k) => `${encodeString(k)}:${canonical(value[k] as Json)}`).join(",")}}`;
}

/** RFC 8259 JSON; integers as bigint, other numbers as number; the last of duplicate keys wins. */
export function parseJson(text: string): Json {
  let at = 0;
  const fail = (): never => {
    throw new JsonError(`not JSON at ${at}`);
  };
  const space = (): void => {
    while (at < text.length && " \t\n\r".includes(text[at] ?? "")) at++;
  };
  const value = (depth: number): Json => {
    if (depth > 64) fail();
    space();
    const ch = text[at];
    if (ch === "{") {
      at++;
      const out: { [key: string]: Json } = {};
      space();
      if (text[at] === "}") {
        at++;
        return out;
      }
      for (;;) {
        space();
        if (text[at] !== '"') fail();
        const key = string();
        space();
        if (text[at++] !== ":") fail();
        Object.defineProperty(out, key, { value: value(depth + 1), enumerable: true, configurable: true, writable: true });
        space();
        if (text[at] === ",") at++;
        else if (text[at] === "}") {
          at++;
          return out;
        } else fail();
      }
    }
    if (ch === "[") {
      at++;
      const out: Json[] = [];
      space();
      if (text[at] === "]") {
        at++;
        return out;
      }
      for (;;) {
        out.push(value(depth + 1));
        space();
        if (text[at] === ",") at++;
        else if (text[at] === "]") {
          at++;
          return out;
        } else fail();
      }
    }
    if (ch === '"') return string();
    for (const [word, result] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return result;
      }
    }
    const number = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(at));
    if (number === null) return fail();
    at += number[0].length;
    return number[2] === undefined && number[3] === undefined ? BigInt(number[0]) : Number(number[0]);
  };
  const string = (): string => {
    at++; // the opening quote
    let out = "";
    for (;;) {
      const ch = text[at++];
      if (ch === undefined) return fail();
      if (ch === '"') return out;
      if (ch === "\\") {
        const e = text[at++];
        const simple: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
        if (e !== undefined && simple[e] !== undefined) out += simple[e];
        else if (e === "u" && /^[0-9a-fA-F]{4}$/.test(text.slice(at, at + 4))) {
          out += String.fromCharCode(Number.parseInt(text.slice(at, at + 4), 16));
          at += 4;
        } else fail();
      } else if ((ch.codePointAt(0) ?? 0) < 0x20) fail();
      else out += ch;
    }
  };
  const result = value(0);
  space();
  if (at !== text.length) fail();
  return result;
}
