/**
 * Ed25519 (RFC 8032) through WebCrypto, as `veil.crypto.signing`: a verifying key is
 * refused when its y is not canonical or its point has small order (libsodium's
 * blocklist: such a key verifies forged signatures for every message).
 */

import { InvalidLength, InvalidSignature, NonCanonicalEncoding, NotInSubgroup } from "./errors.js";
import { bytesEqual, owned, toHex } from "./encoding.js";

export const SIGNATURE_SIZE = 64;
const ED25519_P = (1n << 255n) - 19n;

function y(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i] ?? 0);
  return n & ((1n << 255n) - 1n);
}

function yOfHex(hexLe: string): bigint {
  const bytes = new Uint8Array(hexLe.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Number.parseInt(hexLe.slice(2 * i, 2 * i + 2), 16);
  return y(bytes);
}

const SMALL_ORDER_Y = new Set<bigint>([
  0n,
  1n,
  ED25519_P - 1n,
  yOfHex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
  yOfHex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
]);

export class VerifyingKey {
  static readonly SIZE = 32;
  readonly #raw: Uint8Array;
  #key: Promise<CryptoKey> | undefined;

  constructor(data: Uint8Array) {
    if (data.length !== VerifyingKey.SIZE) {
      throw new InvalidLength(`Ed25519 public key: expected 32 bytes, got ${data.length}`);
    }
    const value = y(data);
    if (value >= ED25519_P) {
      throw new NonCanonicalEncoding("Ed25519 public key: y is not below the field modulus");
    }
    if (SMALL_ORDER_Y.has(value)) throw new NotInSubgroup("Ed25519 public key: a point of small order");
    this.#raw = Uint8Array.from(data);
  }

  bytes(): Uint8Array {
    return Uint8Array.from(this.#raw);
  }

  equals(other: VerifyingKey): boolean {
    return bytesEqual(this.#raw, other.#raw);
  }

  async verify(signature: Uint8Array, message: Uint8Array): Promise<void> {
    if (signature.length !== SIGNATURE_SIZE) throw new InvalidSignature();
    this.#key ??= crypto.subtle.importKey("raw", owned(this.#raw), { name: "Ed25519" }, false, ["verify"]);
    let ok: boolean;
    try {
      ok = await crypto.subtle.verify({ name: "Ed25519" }, await this.#key, owned(signature), owned(message));
    } catch {
      throw new InvalidSignature("Ed25519 public key: not a curve point");
    }
    if (!ok) throw new InvalidSignature();
  }

  toJSON(): string {
    return toHex(this.#raw);
  }
}

/** A device's Ed25519 key pair; the private key is a non-extractable WebCrypto key. */
export class SigningKey {
  readonly #private: CryptoKey;

  private constructor(
    privateKey: CryptoKey,
    readonly verifyingKey: VerifyingKey,
  ) {
    this.#private = privateKey;
  }

  static async generate(): Promise<SigningKey> {
    const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, false, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    return new SigningKey(pair.privateKey, new VerifyingKey(raw));
  }

  /** A key kept as a WebCrypto key (e.g. in IndexedDB, which stores CryptoKeys as they
   * are): it must be a non-extractable Ed25519 private key. `verifyingKey` is taken on
   * trust; check the pair by signing and verifying when it comes from storage. */
  static fromCryptoKey(privateKey: CryptoKey, verifyingKey: VerifyingKey): SigningKey {
    if (privateKey.type !== "private" || privateKey.algorithm.name !== "Ed25519" || privateKey.extractable) {
      throw new TypeError("a signing key is a non-extractable Ed25519 private CryptoKey");
    }
    return new SigningKey(privateKey, verifyingKey);
  }

  /** The private key's WebCrypto handle, non-extractable: it signs, and its bytes cannot be read. */
  cryptoKey(): CryptoKey {
    return this.#private;
  }

  async sign(message: Uint8Array): Promise<Uint8Array> {
    return new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, this.#private, owned(message)));
  }

  toJSON(): string {
    return `SigningKey(${this.verifyingKey.toJSON().slice(0, 16)}…)`;
  }
}
