/**
 * User ids from IdP claims, as `veil.protocol.ids.user_id_for`: kept characters as
 * they are, others as `~XX` per UTF-8 byte, `.` and `..` escaped, and a claim whose
 * escaped form is over 256 characters as `~H` and its SHA-256 in hex.
 */

import { toHex } from "../crypto/encoding.js";

const MAX_ID = 256;
const KEPT = /^[A-Za-z0-9._@:-]$/;
const encoder = new TextEncoder();

export async function userIdFor(claim: string): Promise<string> {
  if (typeof claim !== "string" || !claim) throw new RangeError("a user id claim must be a non-empty string");
  if (/\p{Surrogate}/u.test(claim)) throw new RangeError("the user id claim is not valid Unicode");
  if (claim === "." || claim === "..") return "~2E".repeat(claim.length);
  let escaped = "";
  for (const ch of claim) {
    escaped += KEPT.test(ch)
      ? ch
      : Array.from(encoder.encode(ch), (b) => `~${b.toString(16).toUpperCase().padStart(2, "0")}`).join("");
  }
  if (escaped.length <= MAX_ID) return escaped;
  return `~H${toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(claim))))}`;
}
