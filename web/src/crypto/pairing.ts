/**
 * BLS12-381 behind one seam, as `veil.crypto.pairing` is on the Python side: the only
 * module that imports `@noble/curves`. Encodings, byte for byte those of Python:
 *
 * - G1 and G2 points: 48- and 96-byte compressed points in the ZCash/IETF format
 *   (draft-irtf-cfrg-pairing-friendly-curves, Appendix C); only the compressed form,
 *   canonical coordinates, on the curve, in the prime-order subgroup, and not the
 *   identity unless the caller allows it.
 * - GT elements in full (576 bytes, `encodeGt`, what hashes and key derivations take):
 *   the twelve Fp coefficients of the Fp12 value, 48 bytes big-endian each, in tower
 *   order `a0.c0 a0.c1 a1.c0 a1.c1 a2.c0 a2.c1 b0.c0 … b2.c1` for
 *   `f = (a0 + a1 v + a2 v^2) + (b0 + b1 v + b2 v^2) w`.
 * - GT elements on the wire (288 bytes, `compressGt`): the torus T2 (Rubin &
 *   Silverberg, CRYPTO 2003, §5): for `g = a + b w` of norm 1, `c = (1 + a) / b` in
 *   Fp6, and `g = (c + w) / (c - w)`; `c` as its six coefficients in the order above;
 *   the identity as 288 zero bytes. A decoder decompresses and checks GT membership.
 *
 * Field arithmetic is noble's; this module only composes it.
 */

import { bls12_381 as bls } from "@noble/curves/bls12-381.js";

import { concat } from "./encoding.js";
import {
  IdentityElement,
  InvalidLength,
  NonCanonicalEncoding,
  NotInSubgroup,
  NotOnCurve,
} from "./errors.js";

const { Fp, Fp2, Fp6, Fp12, Fr } = bls.fields;

export type G1 = InstanceType<typeof bls.G1.Point>;
export type G2 = InstanceType<typeof bls.G2.Point>;
export type GT = ReturnType<typeof bls.pairing>;
type Fp6Value = ReturnType<typeof Fp6.create>;

export const R: bigint = Fr.ORDER;
export const PRIME: bigint = Fp.ORDER;
export const P: G1 = bls.G1.Point.BASE;
export const Q: G2 = bls.G2.Point.BASE;

export const SCALAR_SIZE = 32;
export const G1_SIZE = 48;
export const G2_SIZE = 96;
export const GT_SIZE = 576;
export const GT_COMPRESSED_SIZE = 288;
const FP_SIZE = 48;

export const H2_DST = new TextEncoder().encode(
  "VEIL-V01-CS01-with-BLS12381G2_XMD:SHA-256_SSWU_RO_",
);

const FLAG_COMPRESSED = 0x80;
const FLAG_INFINITY = 0x40;
const FLAG_LARGEST_Y = 0x20;

// --- scalars ------------------------------------------------------------------------

export function bytesToBigint(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const byte of bytes) n = (n << 8n) | BigInt(byte);
  return n;
}

export function bigintToBytes(n: bigint, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

/** A uniform non-zero scalar: 64 random bytes reduced mod r (bias < 2^-256). */
export function randomScalar(): bigint {
  for (;;) {
    const n = bytesToBigint(crypto.getRandomValues(new Uint8Array(64))) % R;
    if (n !== 0n) return n;
  }
}

/**
 * `point * k` for a secret `k`, blinded as Python's `mul_secret`: two multiplications
 * by scalars that are each uniform on their own (`m` and `k - m`).
 */
export function mulSecret<T extends { multiply(k: bigint): T; add(other: T): T }>(
  point: T,
  k: bigint,
): T {
  const m = randomScalar();
  const rest = (((k - m) % R) + R) % R;
  const left = point.multiply(m);
  return rest === 0n ? left : left.add(point.multiply(rest));
}

/** `x ** k` for a secret `k`, blinded the same way. */
export function powSecret(x: GT, k: bigint): GT {
  const m = randomScalar();
  const rest = (((k - m) % R) + R) % R;
  return Fp12.mul(Fp12.pow(x, m), Fp12.pow(x, rest));
}

// --- the pairing and GT ---------------------------------------------------------------

export function pair(a: G1, b: G2): GT {
  return bls.pairing(a, b);
}

export const GT_GENERATOR: GT = pair(P, Q);

export function gtEqual(a: GT, b: GT): boolean {
  return Fp12.eql(a, b);
}

export function gtMul(a: GT, b: GT): GT {
  return Fp12.mul(a, b);
}

export function gtIsOne(a: GT): boolean {
  return Fp12.eql(a, Fp12.ONE);
}

/** A uniform element of GT: `e(P, Q)` to a secret random power, blinded. */
export function randomGt(): GT {
  return powSecret(GT_GENERATOR, randomScalar());
}

const U_ABS = 0xd201000000010000n; // |u| for the BLS parameter u = -0xd201000000010000

/**
 * Whether an Fp12 value lies in GT. Scott, "A note on group membership tests for G1,
 * G2 and GT" (ePrint 2021/1130), §6: in the cyclotomic subgroup
 * (x^(p^4 - p^2 + 1) = 1) and x^p = x^u.
 */
export function isInGt(x: GT): boolean {
  if (Fp12.is0(x)) return false;
  const p2 = Fp12.frobeniusMap(x, 2);
  if (!Fp12.eql(Fp12.mul(Fp12.frobeniusMap(x, 4), x), p2)) return false;
  // x^u with u negative: the inverse of x^|u| (x is unitary here, so its conjugate).
  const xu = Fp12.conjugate(Fp12.pow(x, U_ABS));
  return Fp12.eql(Fp12.frobeniusMap(x, 1), xu);
}

function coefficients(x: GT): bigint[] {
  const a = [x.c0.c0, x.c0.c1, x.c0.c2, x.c1.c0, x.c1.c1, x.c1.c2];
  return a.flatMap((c) => [c.c0, c.c1]);
}

function fp6(c: bigint[]): Fp6Value {
  const at = (i: number): bigint => c[i] ?? 0n;
  return Fp6.create({
    c0: Fp2.create({ c0: at(0), c1: at(1) }),
    c1: Fp2.create({ c0: at(2), c1: at(3) }),
    c2: Fp2.create({ c0: at(4), c1: at(5) }),
  });
}

function coordinate(chunk: Uint8Array, what: string): bigint {
  const value = bytesToBigint(chunk);
  if (value >= PRIME) {
    throw new NonCanonicalEncoding(`${what}: coordinate is not below the field modulus`);
  }
  return value;
}

/** The full 576-byte form (hashes and key derivations take it). */
export function encodeGt(x: GT): Uint8Array {
  return concat(coefficients(x).map((c) => bigintToBytes(c, FP_SIZE)));
}

/** The full form back, checked: canonical coordinates, in GT, not 1 unless allowed. */
export function decodeGt(
  data: Uint8Array,
  { allowIdentity = false, what = "GT element" } = {},
): GT {
  if (data.length !== GT_SIZE) {
    throw new InvalidLength(`${what}: expected ${GT_SIZE} bytes, got ${data.length}`);
  }
  const c: bigint[] = [];
  for (let i = 0; i < GT_SIZE; i += FP_SIZE) c.push(coordinate(data.subarray(i, i + FP_SIZE), what));
  const x = Fp12.create({ c0: fp6(c.slice(0, 6)), c1: fp6(c.slice(6)) });
  if (gtIsOne(x)) {
    if (!allowIdentity) throw new IdentityElement(`${what}: the identity is not allowed here`);
    return x;
  }
  if (!isInGt(x)) throw new NotInSubgroup(`${what}: not in the order-r subgroup GT`);
  return x;
}

/** The 288-byte wire form: `c = (1 + a) / b` for `x = a + b w`. */
export function compressGt(x: GT): Uint8Array {
  if (gtIsOne(x)) return new Uint8Array(GT_COMPRESSED_SIZE);
  const c = Fp6.mul(Fp6.add(x.c0, Fp6.ONE), Fp6.inv(x.c1));
  const flat = coefficients(Fp12.create({ c0: c, c1: Fp6.ZERO }));
  return concat(flat.slice(0, 6).map((n) => bigintToBytes(n, FP_SIZE)));
}

export function decompressGt(
  data: Uint8Array,
  { allowIdentity = false, what = "GT element" } = {},
): GT {
  if (data.length !== GT_COMPRESSED_SIZE) {
    throw new InvalidLength(`${what}: expected ${GT_COMPRESSED_SIZE} bytes, got ${data.length}`);
  }
  const c: bigint[] = [];
  for (let i = 0; i < GT_COMPRESSED_SIZE; i += FP_SIZE) {
    c.push(coordinate(data.subarray(i, i + FP_SIZE), what));
  }
  if (c.every((n) => n === 0n)) {
    if (!allowIdentity) throw new IdentityElement(`${what}: the identity is not allowed here`);
    return Fp12.ONE;
  }
  const cc = fp6(c);
  const w = fp6([1n]);
  const plus = Fp12.create({ c0: cc, c1: w });
  const minus = Fp12.create({ c0: cc, c1: Fp6.neg(w) });
  const x = Fp12.mul(plus, Fp12.inv(minus));
  if (!isInGt(x)) throw new NotInSubgroup(`${what}: not in the order-r subgroup GT`);
  return x;
}

// --- G1 and G2 --------------------------------------------------------------------------

function splitFlags(data: Uint8Array, size: number, what: string): number {
  if (data.length !== size) {
    throw new InvalidLength(`${what}: expected ${size} bytes, got ${data.length}`);
  }
  const first = data[0] ?? 0;
  const flags = first & 0xe0;
  if (!(flags & FLAG_COMPRESSED)) {
    throw new NonCanonicalEncoding(`${what}: only the compressed form is accepted`);
  }
  const bodyIsZero = (first & 0x1f) === 0 && data.subarray(1).every((b) => b === 0);
  if (flags & FLAG_INFINITY && (flags & FLAG_LARGEST_Y || !bodyIsZero)) {
    throw new NonCanonicalEncoding(`${what}: malformed point at infinity`);
  }
  return flags;
}

export function encodeG1(point: G1): Uint8Array {
  return point.toBytes(true);
}

export function encodeG2(point: G2): Uint8Array {
  return point.toBytes(true);
}

export function decodeG1(
  data: Uint8Array,
  { allowIdentity = false, what = "G1 point" } = {},
): G1 {
  const flags = splitFlags(data, G1_SIZE, what);
  if (flags & FLAG_INFINITY) {
    if (!allowIdentity) throw new IdentityElement(`${what}: the identity is not allowed here`);
    return bls.G1.Point.ZERO;
  }
  const body = Uint8Array.from(data);
  body[0] = (body[0] ?? 0) & 0x1f;
  const x = coordinate(body, what);
  let point: G1;
  try {
    point = bls.G1.Point.fromBytes(data);
  } catch {
    // x^3 + 4 must be a square for a point to exist.
    const rhs = Fp.add(Fp.mul(Fp.sqr(x), x), 4n);
    if (!isSquare(() => Fp.sqrt(rhs))) throw new NotOnCurve(`${what}: not on the curve`);
    throw new NotInSubgroup(`${what}: not in the prime-order subgroup`);
  }
  if (!point.isTorsionFree()) throw new NotInSubgroup(`${what}: not in the prime-order subgroup`);
  return point;
}

export function decodeG2(
  data: Uint8Array,
  { allowIdentity = false, what = "G2 point" } = {},
): G2 {
  const flags = splitFlags(data, G2_SIZE, what);
  if (flags & FLAG_INFINITY) {
    if (!allowIdentity) throw new IdentityElement(`${what}: the identity is not allowed here`);
    return bls.G2.Point.ZERO;
  }
  const body = Uint8Array.from(data);
  body[0] = (body[0] ?? 0) & 0x1f;
  const x1 = coordinate(body.subarray(0, FP_SIZE), what);
  const x0 = coordinate(body.subarray(FP_SIZE), what);
  let point: G2;
  try {
    point = bls.G2.Point.fromBytes(data);
  } catch {
    const x = Fp2.create({ c0: x0, c1: x1 });
    const b = Fp2.create({ c0: 4n, c1: 4n });
    const rhs = Fp2.add(Fp2.mul(Fp2.sqr(x), x), b);
    if (!isSquare(() => Fp2.sqrt(rhs))) throw new NotOnCurve(`${what}: not on the curve`);
    throw new NotInSubgroup(`${what}: not in the prime-order subgroup`);
  }
  if (!point.isTorsionFree()) throw new NotInSubgroup(`${what}: not in the prime-order subgroup`);
  return point;
}

function isSquare(root: () => unknown): boolean {
  try {
    root();
    return true;
  } catch {
    return false;
  }
}

/** RFC 9380 `hash_to_curve`, suite BLS12381G2_XMD:SHA-256_SSWU_RO_, Veil's tag. */
export function hashToG2(message: Uint8Array, dst: Uint8Array = H2_DST): G2 {
  return bls.G2.hashToCurve(message, { DST: dst }) as G2;
}
