/**
 * Multi-hop transform cryptography, byte for byte `veil.crypto.pre`: IronCore's
 * recrypt scheme (Wang-Cao with the Cai-Liu multi-hop extension) on BLS12-381.
 *
 * Wire formats (integers big-endian; points and compressed GT elements as in
 * `pairing`):
 *
 *     ciphertext     02 02 | level:1 | E:48 | C:288 | auth:32 | level x block | signer:32 | sig:64
 *     block          T:48 | encK:288 | S:48 | encR:288
 *     transform key  02 03 | T:48 | pk_B:48 | encK:288 | hashedK:96 | signer:32 | sig:64
 *
 * Verify, then use: `EncryptedValue.verify()` and `TransformKey.verify()` check the
 * Ed25519 signature and give the `Verified*` kinds, the only ones `decrypt` takes.
 * The browser never transforms (the key service does); it encrypts, makes transform
 * keys and decrypts.
 */

import { bls12_381 as bls } from "@noble/curves/bls12-381.js";

import { Kind, Reader, bytesEqual, concat, header, owned } from "./encoding.js";
import {
  DecryptionError,
  IdentityElement,
  InvalidLength,
  InvalidSignature,
  NonCanonicalEncoding,
  UnsupportedVersion,
} from "./errors.js";
import * as pg from "./pairing.js";
import { SIGNATURE_SIZE, SigningKey, VerifyingKey } from "./signing.js";

export const MAX_LEVEL = 8;
const AUTH_SIZE = 32;
const FIXED_SIZE = 3 + pg.G1_SIZE + pg.GT_COMPRESSED_SIZE + AUTH_SIZE + 32 + SIGNATURE_SIZE;

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", owned(data)));
}

function h2(x: pg.GT): pg.G2 {
  return pg.hashToG2(pg.encodeGt(x));
}

async function authHash(ephemeral: pg.G1, plaintext: pg.GT): Promise<Uint8Array> {
  return sha256(concat([pg.encodeG1(ephemeral), pg.encodeGt(plaintext)]));
}

export function decodeScalar(data: Uint8Array): bigint {
  if (data.length !== pg.SCALAR_SIZE) {
    throw new InvalidLength(`scalar: expected ${pg.SCALAR_SIZE} bytes, got ${data.length}`);
  }
  const n = pg.bytesToBigint(data);
  if (n >= pg.R) throw new NonCanonicalEncoding("scalar: value is not below the group order");
  if (n === 0n) throw new IdentityElement("scalar: zero is not allowed here");
  return n;
}

export class PublicKey {
  static readonly SIZE = 2 + pg.G1_SIZE;

  constructor(readonly point: pg.G1) {
    // Everything encrypted to the identity pairs to 1: its body would be the plaintext.
    if (point.equals(bls.G1.Point.ZERO)) {
      throw new IdentityElement("public key: the identity is not a public key");
    }
  }

  static fromBytes(data: Uint8Array): PublicKey {
    const reader = new Reader(data, "public key");
    reader.expectHeader(Kind.PUBLIC_KEY);
    const point = pg.decodeG1(reader.take(pg.G1_SIZE), { what: "public key" });
    reader.finish();
    return new PublicKey(point);
  }

  bytes(): Uint8Array {
    return concat([header(Kind.PUBLIC_KEY), pg.encodeG1(this.point)]);
  }

  equals(other: PublicKey): boolean {
    return this.point.equals(other.point);
  }

  toJSON(): string {
    return `PublicKey(${Array.from(pg.encodeG1(this.point).subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("")}…)`;
  }
}

/** A PRE private key `a`; it never leaves the device, and never reaches JSON. */
export class PrivateKey {
  readonly #scalar: bigint;
  readonly publicKey: PublicKey;
  #negatedQ: pg.G2 | undefined;

  private constructor(scalar: bigint) {
    this.#scalar = scalar;
    this.publicKey = new PublicKey(pg.mulSecret(pg.P, scalar));
  }

  static generate(): PrivateKey {
    return new PrivateKey(pg.randomScalar());
  }

  static fromSecretBytes(data: Uint8Array): PrivateKey {
    return new PrivateKey(decodeScalar(data));
  }

  toSecretBytes(): Uint8Array {
    return pg.bigintToBytes(this.#scalar, pg.SCALAR_SIZE);
  }

  /** `k + c*a` mod r: a Schnorr response (`schnorr.sign`), without handing out `a`. */
  schnorrResponse(k: bigint, c: bigint): bigint {
    return (k + c * this.#scalar) % pg.R;
  }

  /** `-a*Q`, made once (blinded): decryption then only feeds it to the pairing. */
  negatedQ(): pg.G2 {
    this.#negatedQ ??= pg.mulSecret(pg.Q, this.#scalar).negate();
    return this.#negatedQ;
  }

  toJSON(): string {
    return "PrivateKey(…)";
  }
}

/** A PRE plaintext: a uniform GT element, from which symmetric keys are derived. */
export class Plaintext {
  readonly #value: pg.GT;

  constructor(value: pg.GT) {
    this.#value = value;
  }

  static generate(): Plaintext {
    return new Plaintext(pg.randomGt());
  }

  static fromSecretBytes(data: Uint8Array): Plaintext {
    return new Plaintext(pg.decodeGt(data, { what: "plaintext" }));
  }

  toSecretBytes(): Uint8Array {
    return pg.encodeGt(this.#value);
  }

  get element(): pg.GT {
    return this.#value;
  }

  equals(other: Plaintext): boolean {
    return pg.gtEqual(this.#value, other.#value);
  }

  toJSON(): string {
    return "Plaintext(…)";
  }
}

export class TransformBlock {
  static readonly SIZE = 2 * pg.G1_SIZE + 2 * pg.GT_COMPRESSED_SIZE;

  constructor(
    readonly ephemeralKey: pg.G1, // T
    readonly encryptedK: pg.GT, // encK
    readonly randomKey: pg.G1, // S
    readonly encryptedR: pg.GT, // encR
  ) {}

  bytes(): Uint8Array {
    return concat([
      pg.encodeG1(this.ephemeralKey),
      pg.compressGt(this.encryptedK),
      pg.encodeG1(this.randomKey),
      pg.compressGt(this.encryptedR),
    ]);
  }

  static read(reader: Reader, index: number): TransformBlock {
    const what = `ciphertext block ${index}`;
    return new TransformBlock(
      pg.decodeG1(reader.take(pg.G1_SIZE), { what: `${what} T` }),
      pg.decompressGt(reader.take(pg.GT_COMPRESSED_SIZE), { what: `${what} encK` }),
      pg.decodeG1(reader.take(pg.G1_SIZE), { what: `${what} S` }),
      pg.decompressGt(reader.take(pg.GT_COMPRESSED_SIZE), { what: `${what} encR` }),
    );
  }
}

const minted = Symbol("verified");

/** A PRE ciphertext at any level (0 = as encrypted, n = after n transforms). */
export class EncryptedValue {
  constructor(
    readonly ephemeralKey: pg.G1, // E
    readonly body: pg.GT, // C
    readonly authHash: Uint8Array,
    readonly blocks: readonly TransformBlock[],
    readonly signer: VerifyingKey,
    readonly signature: Uint8Array,
  ) {}

  get level(): number {
    return this.blocks.length;
  }

  signedBytes(): Uint8Array {
    return concat([
      header(Kind.CIPHERTEXT),
      Uint8Array.of(this.level),
      pg.encodeG1(this.ephemeralKey),
      pg.compressGt(this.body),
      this.authHash,
      ...this.blocks.map((block) => block.bytes()),
      this.signer.bytes(),
    ]);
  }

  bytes(): Uint8Array {
    return concat([this.signedBytes(), this.signature]);
  }

  static fromBytes(data: Uint8Array): EncryptedValue {
    const reader = new Reader(data, "ciphertext");
    reader.expectHeader(Kind.CIPHERTEXT);
    const level = reader.uint8();
    if (level > MAX_LEVEL) {
      throw new UnsupportedVersion(`ciphertext: level ${level} exceeds ${MAX_LEVEL}`);
    }
    const expected = FIXED_SIZE + level * TransformBlock.SIZE;
    if (data.length !== expected) {
      throw new InvalidLength(`ciphertext: level ${level} needs ${expected} bytes, got ${data.length}`);
    }
    const ephemeralKey = pg.decodeG1(reader.take(pg.G1_SIZE), { what: "ciphertext E" });
    const body = pg.decompressGt(reader.take(pg.GT_COMPRESSED_SIZE), { what: "ciphertext C" });
    const auth = Uint8Array.from(reader.take(AUTH_SIZE));
    const blocks = Array.from({ length: level }, (_, i) => TransformBlock.read(reader, i));
    const signer = new VerifyingKey(reader.take(VerifyingKey.SIZE));
    const signature = Uint8Array.from(reader.take(SIGNATURE_SIZE));
    reader.finish();
    return new EncryptedValue(ephemeralKey, body, auth, blocks, signer, signature);
  }

  /** Check the signature (and, if given, that `signer` made it). */
  async verify({ signer }: { signer?: VerifyingKey } = {}): Promise<VerifiedEncryptedValue> {
    if (signer !== undefined && !signer.equals(this.signer)) throw new InvalidSignature();
    await this.signer.verify(this.signature, this.signedBytes());
    return new VerifiedEncryptedValue(minted, this);
  }
}

/** An `EncryptedValue` whose signature was checked, or that this process made. */
export class VerifiedEncryptedValue extends EncryptedValue {
  constructor(token: typeof minted, value: EncryptedValue) {
    if (token !== minted) throw new TypeError("a VerifiedEncryptedValue is made by .verify()");
    super(value.ephemeralKey, value.body, value.authHash, value.blocks, value.signer, value.signature);
  }
}

/** A delegation A -> B: lets a transformer move ciphertexts for A to B. */
export class TransformKey {
  constructor(
    readonly ephemeralKey: pg.G1, // T
    readonly toPublicKey: PublicKey, // pk_B
    readonly encryptedK: pg.GT, // encK
    readonly hashedK: pg.G2, // not signed: the key service may augment it
    readonly signer: VerifyingKey,
    readonly signature: Uint8Array,
  ) {}

  signedBytes(): Uint8Array {
    return concat([
      header(Kind.TRANSFORM_KEY),
      pg.encodeG1(this.ephemeralKey),
      pg.encodeG1(this.toPublicKey.point),
      pg.compressGt(this.encryptedK),
      this.signer.bytes(),
    ]);
  }

  bytes(): Uint8Array {
    return concat([
      header(Kind.TRANSFORM_KEY),
      pg.encodeG1(this.ephemeralKey),
      pg.encodeG1(this.toPublicKey.point),
      pg.compressGt(this.encryptedK),
      pg.encodeG2(this.hashedK),
      this.signer.bytes(),
      this.signature,
    ]);
  }

  static fromBytes(data: Uint8Array): TransformKey {
    const reader = new Reader(data, "transform key");
    reader.expectHeader(Kind.TRANSFORM_KEY);
    const key = new TransformKey(
      pg.decodeG1(reader.take(pg.G1_SIZE), { what: "transform key T" }),
      new PublicKey(pg.decodeG1(reader.take(pg.G1_SIZE), { what: "transform key pk_B" })),
      pg.decompressGt(reader.take(pg.GT_COMPRESSED_SIZE), { what: "transform key encK" }),
      pg.decodeG2(reader.take(pg.G2_SIZE), { what: "transform key hashedK" }),
      new VerifyingKey(reader.take(VerifyingKey.SIZE)),
      Uint8Array.from(reader.take(SIGNATURE_SIZE)),
    );
    reader.finish();
    return key;
  }

  async verify(): Promise<TransformKey> {
    await this.signer.verify(this.signature, this.signedBytes());
    return this;
  }
}

async function signValue(
  signingKey: SigningKey,
  ephemeralKey: pg.G1,
  body: pg.GT,
  auth: Uint8Array,
): Promise<VerifiedEncryptedValue> {
  const unsigned = new EncryptedValue(ephemeralKey, body, auth, [], signingKey.verifyingKey, new Uint8Array());
  const signature = await signingKey.sign(unsigned.signedBytes());
  const value = new EncryptedValue(ephemeralKey, body, auth, [], signingKey.verifyingKey, signature);
  return new VerifiedEncryptedValue(minted, value);
}

/** `e(k * pk, Q)` as `e(pk, Q) ** k` (blinded). */
function encryptTo(to: PublicKey, k: bigint): pg.GT {
  return pg.powSecret(pg.pair(to.point, pg.Q), k);
}

/** A level-0 ciphertext of `plaintext` for the holder of `to`, signed by the sender. */
export async function encrypt(
  plaintext: Plaintext,
  to: PublicKey,
  signingKey: SigningKey,
): Promise<VerifiedEncryptedValue> {
  const k = pg.randomScalar();
  const ephemeralKey = pg.mulSecret(pg.P, k);
  const body = pg.gtMul(encryptTo(to, k), plaintext.element);
  return signValue(signingKey, ephemeralKey, body, await authHash(ephemeralKey, plaintext.element));
}

/** A transform key from `fromKey`'s holder to `to`'s, signed by its maker. */
export async function generateTransformKey(
  fromKey: PrivateKey,
  to: PublicKey,
  signingKey: SigningKey,
): Promise<TransformKey> {
  const t = pg.randomScalar();
  const k = pg.randomGt();
  const ephemeralKey = pg.mulSecret(pg.P, t);
  const encryptedK = pg.gtMul(encryptTo(to, t), k);
  const hashedK = h2(k).add(fromKey.negatedQ());
  const unsigned = new TransformKey(ephemeralKey, to, encryptedK, hashedK, signingKey.verifyingKey, new Uint8Array());
  const signature = await signingKey.sign(unsigned.signedBytes());
  return new TransformKey(ephemeralKey, to, encryptedK, hashedK, signingKey.verifyingKey, signature);
}

/** Whether `value` is `origin` moved along zero or more transforms. */
export function descendsFrom(value: EncryptedValue, origin: VerifiedEncryptedValue): boolean {
  if (!(origin instanceof VerifiedEncryptedValue) || origin.level !== 0) {
    throw new TypeError("origin must be a verified level-0 EncryptedValue");
  }
  return bytesEqual(value.authHash, origin.authHash) && value.ephemeralKey.equals(origin.ephemeralKey);
}

/**
 * The plaintext at any level; `DecryptionError` if `key` is not the holder's, or,
 * with `origin` (the author's signed level-0 value), if `value` does not descend from it.
 */
export async function decrypt(
  value: VerifiedEncryptedValue,
  key: PrivateKey,
  { origin }: { origin?: VerifiedEncryptedValue } = {},
): Promise<Plaintext> {
  if (!(value instanceof VerifiedEncryptedValue)) {
    throw new TypeError("decrypt() takes a VerifiedEncryptedValue: call .verify() first");
  }
  if (origin !== undefined && !descendsFrom(value, origin)) throw new DecryptionError();
  const negQ = key.negatedQ(); // e(X, -dQ) = e(-d X, Q)
  let plaintext: pg.GT;
  const last = value.blocks[value.blocks.length - 1];
  if (last === undefined) {
    plaintext = pg.gtMul(value.body, pg.pair(value.ephemeralKey, negQ));
  } else {
    let k = pg.gtMul(last.encryptedK, pg.pair(last.ephemeralKey, negQ));
    let r = pg.gtMul(last.encryptedR, pg.pair(last.randomKey, negQ));
    let hashedK = h2(k);
    let hashedR = h2(r);
    for (const block of value.blocks.slice(0, -1).reverse()) {
      k = pg.gtMul(block.encryptedK, pg.pair(block.ephemeralKey, hashedK.negate()));
      r = pg.gtMul(block.encryptedR, pg.pair(block.randomKey, hashedR.add(hashedK).negate()));
      hashedK = h2(k);
      hashedR = h2(r);
    }
    plaintext = pg.gtMul(value.body, pg.pair(value.ephemeralKey, hashedK.add(hashedR).negate()));
  }
  if (!bytesEqual(await authHash(value.ephemeralKey, plaintext), value.authHash)) {
    throw new DecryptionError();
  }
  return new Plaintext(plaintext);
}
