/**
 * User-key escrow, as `veil.crypto.escrow`: AES-256-GCM under PBKDF2-HMAC-SHA256
 * (600,000 to 10,000,000 iterations) of a password, by default the split-trust
 * password made from the key service's and the platform's 128-bit shares.
 *
 *     01 20 | iterations:4 | salt:16 | nonce:12 | ciphertext+tag
 */

import { Kind, Reader, concat, header, owned } from "./encoding.js";
import { DecodeError, DecryptionError, InvalidLength } from "./errors.js";

export const SHARE_SIZE = 16;
export const MIN_ITERATIONS = 600_000;
export const MAX_ITERATIONS = 10_000_000;
const SALT_SIZE = 16;
const NONCE_SIZE = 12;
const TAG_SIZE = 16;
const encoder = new TextEncoder();

export function newShare(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(SHARE_SIZE));
}

/** `SHA-256("veil/v1 split-trust password" ‖ key-service share ‖ platform share)`. */
export async function splitTrustPassword(keyserverShare: Uint8Array, platformShare: Uint8Array): Promise<Uint8Array> {
  for (const share of [keyserverShare, platformShare]) {
    if (share.length !== SHARE_SIZE) throw new RangeError(`each share is ${SHARE_SIZE} bytes`);
  }
  const data = concat([encoder.encode("veil/v1 split-trust password"), keyserverShare, platformShare]);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", owned(data)));
}

async function escrowKey(password: Uint8Array, salt: Uint8Array, iterations: number): Promise<CryptoKey> {
  if (password.length === 0) throw new RangeError("an escrow password must not be empty");
  const base = await crypto.subtle.importKey("raw", owned(password), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "PBKDF2", hash: "SHA-256", salt: owned(salt), iterations },
    base,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

export async function sealEscrow(
  secret: Uint8Array,
  password: Uint8Array,
  context: Uint8Array,
  iterations = MIN_ITERATIONS,
): Promise<Uint8Array> {
  if (!(iterations >= MIN_ITERATIONS && iterations <= MAX_ITERATIONS)) {
    throw new RangeError(`iterations must lie in [${MIN_ITERATIONS}, ${MAX_ITERATIONS}]`);
  }
  const salt = crypto.getRandomValues(new Uint8Array(SALT_SIZE));
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_SIZE));
  const count = new Uint8Array(4);
  new DataView(count.buffer).setUint32(0, iterations);
  const head = concat([header(Kind.ESCROW), count, salt, nonce]);
  const key = await escrowKey(password, salt, iterations);
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: nonce, additionalData: owned(concat([head, context])) },
    key,
    owned(secret),
  );
  return concat([head, new Uint8Array(sealed)]);
}

function readEscrow(blob: Uint8Array): { iterations: number; salt: Uint8Array; nonce: Uint8Array; head: Uint8Array } {
  const reader = new Reader(blob, "escrow blob");
  reader.expectHeader(Kind.ESCROW);
  const iterations = new DataView(reader.take(4).slice().buffer).getUint32(0);
  if (iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) {
    throw new DecodeError(`escrow blob: ${iterations} PBKDF2 iterations is out of policy`);
  }
  const salt = reader.take(SALT_SIZE);
  const nonce = reader.take(NONCE_SIZE);
  const head = blob.subarray(0, 2 + 4 + SALT_SIZE + NONCE_SIZE);
  if (blob.length - head.length < TAG_SIZE) throw new InvalidLength("escrow blob: shorter than its tag");
  return { iterations, salt, nonce, head };
}

/** `DecodeError` unless `blob` is a well-formed escrow within the KDF policy. */
export function checkEscrow(blob: Uint8Array): void {
  readEscrow(blob);
}

export async function openEscrow(blob: Uint8Array, password: Uint8Array, context: Uint8Array): Promise<Uint8Array> {
  const { iterations, salt, nonce, head } = readEscrow(blob);
  const key = await escrowKey(password, salt, iterations);
  try {
    const opened = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: owned(nonce), additionalData: owned(concat([head, context])) },
      key,
      owned(blob.subarray(head.length)),
    );
    return new Uint8Array(opened);
  } catch {
    throw new DecryptionError();
  }
}
