/**
 * The meeting key schedule, as `veil.crypto.schedule`: every key is HKDF-SHA256
 * (RFC 5869, through WebCrypto) with a purpose label and a length-prefixed context.
 *
 *     SK_n      = HKDF(ikm = plaintext (576 bytes), info = "veil/v1 " ‖ len(label):2 ‖
 *                 "meeting session key" ‖ ctx(meeting id, n))
 *     base key  = HKDF(SK_n, info = "veil/v1 sframe base" ‖ ctx(meeting id, n, sender, stream))
 *     chat key  = HKDF(SK_n, info = "veil/v1 chat" ‖ ctx(meeting id, n))
 *     ctx(id, x…) = len(id):2 ‖ id ‖ x:8 …
 *     KID       = sender << 20 | stream << 16 | (n mod 2^16)
 */

import { concat, owned } from "./encoding.js";
import type { Plaintext } from "./pre.js";

export const KEY_SIZE = 32;
export const EPOCH_BITS = 16n;
export const STREAM_BITS = 4n;
export const STREAM_LIMIT = 16;
const MAX_U64 = 2n ** 64n - 1n;
export const SENDER_LIMIT = 2n ** (64n - EPOCH_BITS - STREAM_BITS);

const encoder = new TextEncoder();

function u16(n: number): Uint8Array {
  return Uint8Array.of(n >> 8, n & 0xff);
}

function u64(n: bigint): Uint8Array {
  if (n < 0n || n >= 2n ** 64n) throw new RangeError("epochs and senders are unsigned 64-bit numbers");
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, n);
  return out;
}

function context(meetingId: string, ...numbers: bigint[]): Uint8Array {
  const raw = encoder.encode(meetingId);
  if (raw.length === 0 || raw.length > 0xffff) {
    throw new RangeError("meeting_id must be 1 to 65535 bytes of UTF-8");
  }
  return concat([u16(raw.length), raw, ...numbers.map(u64)]);
}

async function hkdf(ikm: Uint8Array, info: Uint8Array, length = KEY_SIZE): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", owned(ikm), "HKDF", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(), info: owned(info) },
    key,
    length * 8,
  );
  return new Uint8Array(bits);
}

/** `Plaintext.derive_key`: HKDF of the plaintext's full bytes, labelled. */
export function deriveKey(
  plaintext: Plaintext,
  purpose: string,
  extra: Uint8Array = new Uint8Array(),
): Promise<Uint8Array> {
  const label = encoder.encode(purpose);
  if (label.length === 0 || label.length > 0xffff) throw new RangeError("a purpose label is 1 to 65535 bytes");
  const info = concat([encoder.encode("veil/v1 "), u16(label.length), label, extra]);
  return hkdf(plaintext.toSecretBytes(), info);
}

export function sessionKey(plaintext: Plaintext, meetingId: string, epoch: bigint): Promise<Uint8Array> {
  return deriveKey(plaintext, "meeting session key", context(meetingId, epoch));
}

function checkSource(sender: bigint, stream: number): void {
  if (sender < 0n || sender >= SENDER_LIMIT) throw new RangeError("a sender number lies in [0, 2^44)");
  if (!Number.isInteger(stream) || stream < 0 || stream >= STREAM_LIMIT) {
    throw new RangeError("a stream number lies in [0, 16)");
  }
}

function expand(key: Uint8Array, label: string, ctx: Uint8Array): Promise<Uint8Array> {
  if (key.length !== KEY_SIZE) throw new RangeError(`a session key is ${KEY_SIZE} bytes`);
  return hkdf(key, concat([encoder.encode(label), ctx]));
}

export function senderBaseKey(
  session: Uint8Array,
  meetingId: string,
  epoch: bigint,
  sender: bigint,
  stream = 0,
): Promise<Uint8Array> {
  checkSource(sender, stream);
  return expand(session, "veil/v1 sframe base", context(meetingId, epoch, sender, BigInt(stream)));
}

export function chatKey(session: Uint8Array, meetingId: string, epoch: bigint): Promise<Uint8Array> {
  return expand(session, "veil/v1 chat", context(meetingId, epoch));
}

export function mediaKid(epoch: bigint, sender: bigint, stream = 0): bigint {
  checkSource(sender, stream);
  if (epoch < 0n || epoch >= 2n ** 64n) throw new RangeError("an epoch lies in [0, 2^64)");
  return (sender << (EPOCH_BITS + STREAM_BITS)) | (BigInt(stream) << EPOCH_BITS) | (epoch & 0xffffn);
}

export function parseMediaKid(kid: bigint): { epoch: bigint; sender: bigint; stream: number } {
  if (kid < 0n || kid > MAX_U64) throw new RangeError("an SFrame KID lies in [0, 2^64)"); // per frame: no 2n ** 64n
  return {
    epoch: kid & 0xffffn,
    sender: kid >> (EPOCH_BITS + STREAM_BITS),
    stream: Number((kid >> EPOCH_BITS) & 0xfn),
  };
}
