/**
 * Strict parsing of Veil's versioned wire formats (`veil.crypto.encoding`): every
 * structure starts with its format's version and a kind byte; readers check lengths
 * exactly and refuse trailing bytes.
 */

import { InvalidLength, UnsupportedVersion } from "./errors.js";

export const Kind = {
  PUBLIC_KEY: 0x01,
  CIPHERTEXT: 0x02,
  TRANSFORM_KEY: 0x03,
  SCHNORR_SIGNATURE: 0x04,
  DOCUMENT: 0x10,
  DOCUMENT_STREAM: 0x11,
  ESCROW: 0x20,
} as const;
export type Kind = (typeof Kind)[keyof typeof Kind];

/** Version 2 for the formats that carry GT elements (compressed since), else 1. */
export function versionOf(kind: Kind): number {
  return kind === Kind.CIPHERTEXT || kind === Kind.TRANSFORM_KEY ? 2 : 1;
}

export function header(kind: Kind): Uint8Array {
  return Uint8Array.of(versionOf(kind), kind);
}

const KIND_NAMES = new Map<number, string>(Object.entries(Kind).map(([name, code]) => [code, name]));

export class Reader {
  private position = 0;

  constructor(
    private readonly data: Uint8Array,
    private readonly what: string,
  ) {}

  expectHeader(kind: Kind): void {
    const [version, found] = this.take(2);
    if (version !== versionOf(kind)) {
      throw new UnsupportedVersion(`${this.what}: unsupported version ${version}`);
    }
    if (found !== kind) {
      const hex = `0x${(found ?? 0).toString(16).padStart(2, "0")}`;
      throw new UnsupportedVersion(`${this.what}: kind byte ${hex} is not ${KIND_NAMES.get(kind)}`);
    }
  }

  take(n: number): Uint8Array {
    const end = this.position + n;
    if (end > this.data.length) {
      throw new InvalidLength(`${this.what}: truncated (needs ${end} bytes, has ${this.data.length})`);
    }
    const chunk = this.data.subarray(this.position, end);
    this.position = end;
    return chunk;
  }

  uint8(): number {
    return this.take(1)[0] ?? 0;
  }

  finish(): void {
    if (this.position !== this.data.length) {
      throw new InvalidLength(`${this.what}: ${this.data.length - this.position} trailing bytes`);
    }
  }
}

export function concat(parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Constant-time equality of two byte strings (lengths are not secret). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) throw new TypeError("not lowercase hex");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** A copy backed by a plain ArrayBuffer, as WebCrypto's typings want. */
export function owned(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(bytes);
}
