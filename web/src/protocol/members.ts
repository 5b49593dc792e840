/**
 * Member lists as the protocol hashes them (docs/protocol.md §3.4, §4.8): sorted by
 * code point, in the JSON of Python's `json.dumps(list)` (`["a", "b"]`, non-ASCII
 * as `\uXXXX`), so both SDKs hash the same bytes.
 */

import { concat, owned } from "../crypto/encoding.js";
import { compareCodePoints } from "./json.js";

const encoder = new TextEncoder();

/** Sorted by Unicode code point, as Python's `sorted` orders strings. */
export function sortedByCodePoint(items: Iterable<string>): string[] {
  return [...items].sort(compareCodePoints);
}

const ESCAPES: Record<string, string> = {
  '"': '\\"',
  "\\": "\\\\",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\b": "\\b",
  "\f": "\\f",
};

function pythonJsonString(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] ?? "";
    const unit = text.charCodeAt(i);
    const escape = ESCAPES[ch];
    if (escape !== undefined) out += escape;
    else if (unit < 0x20 || unit > 0x7e) out += `\\u${unit.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}"`;
}

/** Python's `json.dumps(list_of_str)`. */
export function pythonJsonList(items: readonly string[]): string {
  return `[${items.map(pythonJsonString).join(", ")}]`;
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", owned(data)));
}

/** `SHA-256("veil/v1 members" ‖ JSON(sorted members))`. */
export function memberDigest(members: Iterable<string>): Promise<Uint8Array> {
  const json = pythonJsonList(sortedByCodePoint(members));
  return sha256(concat([encoder.encode("veil/v1 members"), encoder.encode(json)]));
}

/** Ten digits every member sees alike for an epoch, from its key and member list. */
export async function securityCode(
  sessionKey: Uint8Array,
  epoch: bigint,
  members: Iterable<string>,
): Promise<string> {
  const epochBytes = new Uint8Array(8);
  new DataView(epochBytes.buffer).setBigUint64(0, epoch);
  const roster = encoder.encode(pythonJsonList(sortedByCodePoint(members)));
  const digest = await sha256(
    concat([encoder.encode("veil/v1 security code"), sessionKey, epochBytes, roster]),
  );
  const value = new DataView(digest.buffer).getBigUint64(0) % 10n ** 10n;
  const number = value.toString().padStart(10, "0");
  return `${number.slice(0, 5)} ${number.slice(5)}`;
}
