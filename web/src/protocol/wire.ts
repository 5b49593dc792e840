/**
 * Wire conventions shared with the services, as `veil.protocol`: strict base64url,
 * path segments, the signed-request canonical string, and the messages that devices
 * and admins sign (board posts, hellos, device certificates, proofs).
 *
 * A signed request covers
 *
 *     veil-request-v2 \n DEVICE \n METHOD \n PATH \n QUERY \n SHA-256(body) hex \n TIMESTAMP \n NONCE
 *
 * with PATH percent-decoded (as the key service routes it) and QUERY's pairs sorted
 * and re-encoded as Python's `urlencode(sorted(parse_qsl(query, keep_blank_values=True)))`.
 */

import { concat, owned, toHex } from "../crypto/encoding.js";
import type { SigningKey } from "../crypto/signing.js";
import { compareCodePoints } from "./json.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const DEVICE_HEADER = "veil-device";
export const TIMESTAMP_HEADER = "veil-timestamp";
export const NONCE_HEADER = "veil-nonce";
export const SIGNATURE_HEADER = "veil-signature";
export const NONCE_SIZE = 16;
export const KEYSERVER_AUDIENCE = "veil-keyserver";
export const CONFERENCE_AUDIENCE = "veil-conference";

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** base64url without padding (RFC 4648 §5). */
export function b64encode(data: Uint8Array): string {
  let out = "";
  for (let i = 0; i < data.length; i += 3) {
    const n = ((data[i] ?? 0) << 16) | ((data[i + 1] ?? 0) << 8) | (data[i + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((data.length - i) * 8) / 6));
    for (let j = 0; j < chars; j++) out += B64[(n >> (18 - 6 * j)) & 63];
  }
  return out;
}

/** Strict base64url: the URL alphabet, no padding, canonical trailing bits. */
export function b64decode(text: string): Uint8Array {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) {
    throw new TypeError("not base64url without padding");
  }
  const out = new Uint8Array(Math.floor((text.length * 6) / 8));
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const ch of text) {
    value = (value << 6) | B64.indexOf(ch);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[at++] = (value >> bits) & 0xff;
    }
  }
  if (bits > 0 && (value & ((1 << bits) - 1)) !== 0) throw new TypeError("non-canonical base64url");
  return out;
}

/** Python's `quote(text, safe="")`: all but ASCII letters, digits and `_.-~`, as %XX. */
function quote(text: string, plus = false): string {
  let out = "";
  for (const byte of encoder.encode(text)) {
    const ch = String.fromCharCode(byte);
    if (/[A-Za-z0-9_.~-]/.test(ch)) out += ch;
    else if (plus && byte === 0x20) out += "+";
    else out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Python's `unquote`: %XX sequences decoded as UTF-8 (invalid bytes as U+FFFD). */
function unquote(text: string, plus = false): string {
  const source = plus ? text.replaceAll("+", " ") : text;
  const bytes: number[] = [];
  let out = "";
  const flush = (): void => {
    if (bytes.length) out += decoder.decode(Uint8Array.from(bytes.splice(0)));
  };
  for (let i = 0; i < source.length; i++) {
    const hex = source.slice(i + 1, i + 3);
    if (source[i] === "%" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      flush();
      out += source[i];
    }
  }
  flush();
  return out;
}

/** An id as one URL path segment (`veil.protocol.path_segment`). */
export function pathSegment(value: string): string {
  if (!value) throw new RangeError("an id in a URL path is not empty");
  if (/^\.+$/.test(value)) return "%2E".repeat(value.length);
  return quote(value);
}

export function signedPath(path: string): string {
  return unquote(path);
}

/** `urlencode(sorted(parse_qsl(query, keep_blank_values=True)))`. */
export function canonicalQuery(query: string): string {
  const pairs: [string, string][] = [];
  for (const field of query.split("&")) {
    if (!field) continue;
    const at = field.indexOf("=");
    const [name, value] = at < 0 ? [field, ""] : [field.slice(0, at), field.slice(at + 1)];
    pairs.push([unquote(name, true), unquote(value, true)]);
  }
  pairs.sort((a, b) => compareCodePoints(a[0], b[0]) || compareCodePoints(a[1], b[1]));
  return pairs.map(([name, value]) => `${quote(name, true)}=${quote(value, true)}`).join("&");
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", owned(data))));
}

export async function requestMessage(
  method: string,
  path: string,
  query: string,
  body: Uint8Array,
  timestamp: number,
  nonce: string,
  deviceId: string,
): Promise<Uint8Array> {
  if (deviceId.includes("\n")) throw new RangeError("a device id has no line break");
  const lines = [
    "veil-request-v2",
    deviceId,
    method.toUpperCase(),
    path,
    canonicalQuery(query),
    await sha256Hex(body),
    String(timestamp),
    nonce,
  ];
  return encoder.encode(lines.join("\n"));
}

/** The headers that authenticate one request from `deviceId`; `path` as the service
 * routes it (`signedPath` of the path as sent), as Python's `sign_request` takes it. */
export async function signRequest(
  key: SigningKey,
  deviceId: string,
  method: string,
  path: string,
  query: string,
  body: Uint8Array,
  timestamp: number,
): Promise<Record<string, string>> {
  const nonce = b64encode(crypto.getRandomValues(new Uint8Array(NONCE_SIZE)));
  const message = await requestMessage(method, path, query, body, timestamp, nonce, deviceId);
  return {
    [DEVICE_HEADER]: deviceId,
    [TIMESTAMP_HEADER]: String(timestamp),
    [NONCE_HEADER]: nonce,
    [SIGNATURE_HEADER]: b64encode(await key.sign(message)),
  };
}

function u64(n: bigint | number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

function fields(...parts: Uint8Array[]): Uint8Array {
  return concat(
    parts.flatMap((part) => {
      const length = new Uint8Array(4);
      new DataView(length.buffer).setUint32(0, part.length);
      return [length, part];
    }),
  );
}

export function groupProofMessage(
  action: string,
  groupId: string,
  subject: string,
  timestamp: bigint | number,
  payload: Uint8Array = new Uint8Array(),
): Uint8Array {
  const parts = [action, groupId, subject].map((p) => encoder.encode(p));
  return concat([encoder.encode("veil-group-v1"), fields(...parts, payload), u64(timestamp)]);
}

export function meetingProofMessage(
  action: string,
  meetingId: string,
  userId: string,
  timestamp: bigint | number,
  payload: Uint8Array = new Uint8Array(),
): Uint8Array {
  return groupProofMessage(`meeting-${action}`, meetingId, userId, timestamp, payload);
}

export function postMessage(
  roomId: string,
  postId: Uint8Array,
  kind: string,
  deviceId: string,
  timestamp: bigint | number,
  body: Uint8Array,
): Uint8Array {
  const parts = fields(encoder.encode(roomId), postId, encoder.encode(kind), encoder.encode(deviceId), body);
  return concat([encoder.encode("veil-post-v1"), parts, u64(timestamp)]);
}

export function helloMessage(roomId: string, channel: string, challenge: Uint8Array, deviceId: string): Uint8Array {
  const parts = fields(encoder.encode(roomId), encoder.encode(channel), challenge, encoder.encode(deviceId));
  return concat([encoder.encode("veil-hello-v1"), parts]);
}

export function deviceCertificateMessage(
  userId: string,
  deviceId: string,
  publicKey: Uint8Array,
  signingKey: Uint8Array,
): Uint8Array {
  const parts = fields(encoder.encode(userId), encoder.encode(deviceId), publicKey, signingKey);
  return concat([encoder.encode("veil-device-cert-v1"), parts]);
}

export function deviceProofMessage(
  timestamp: bigint | number,
  transformKey: Uint8Array,
  token: string,
  userPublicKey: Uint8Array,
  deviceSigningKey: Uint8Array,
): Uint8Array {
  return concat([
    encoder.encode("veil-add-device-v2"),
    u64(timestamp),
    fields(transformKey, encoder.encode(token), userPublicKey, deviceSigningKey),
  ]);
}

/** A device's id: a digest of the signing key it registered with. */
export async function deviceId(signingKey: Uint8Array): Promise<string> {
  return (await sha256Hex(concat([encoder.encode("veil-device-id-v1"), signingKey]))).slice(0, 32);
}
