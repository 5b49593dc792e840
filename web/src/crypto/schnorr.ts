/**
 * Schnorr proofs of possession with PRE key pairs over G1, as `veil.crypto.schnorr`:
 * `R = k*P`, `c = H(R, pk, message)`, `s = k + c*a`; valid when `s*P == R + c*pk`.
 * `pk` may be a user's augmented master key that contains the signer's key. Wire form
 * `01 04 | R:48 | s:32`.
 */

import { Kind, Reader, concat, header, owned } from "./encoding.js";
import { InvalidSignature } from "./errors.js";
import * as pg from "./pairing.js";
import { type PrivateKey, PublicKey, decodeScalar } from "./pre.js";

const DOMAIN = new TextEncoder().encode("veil/v1 schnorr-g1");

/** SHA-512 of the domain and length-prefixed parts, reduced mod r (`hash_to_scalar`). */
export async function hashToScalar(domain: Uint8Array, ...parts: Uint8Array[]): Promise<bigint> {
  const framed = [domain, ...parts].flatMap((part) => {
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, part.length);
    return [length, part];
  });
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-512", owned(concat(framed))));
  return pg.bytesToBigint(digest) % pg.R;
}

export class SchnorrSignature {
  static readonly SIZE = 2 + pg.G1_SIZE + pg.SCALAR_SIZE;

  constructor(
    readonly commitment: pg.G1, // R
    readonly response: bigint, // s
  ) {}

  bytes(): Uint8Array {
    return concat([
      header(Kind.SCHNORR_SIGNATURE),
      pg.encodeG1(this.commitment),
      pg.bigintToBytes(this.response, pg.SCALAR_SIZE),
    ]);
  }

  static fromBytes(data: Uint8Array): SchnorrSignature {
    const reader = new Reader(data, "Schnorr signature");
    reader.expectHeader(Kind.SCHNORR_SIGNATURE);
    const commitment = pg.decodeG1(reader.take(pg.G1_SIZE), { what: "Schnorr signature R" });
    const response = decodeScalar(reader.take(pg.SCALAR_SIZE));
    reader.finish();
    return new SchnorrSignature(commitment, response);
  }
}

function challenge(commitment: pg.G1, publicKey: PublicKey, message: Uint8Array): Promise<bigint> {
  return hashToScalar(DOMAIN, pg.encodeG1(commitment), publicKey.bytes(), message);
}

/** Sign with `signer`, bound to `publicKey` (the signer's own by default). */
export async function sign(
  message: Uint8Array,
  signer: PrivateKey,
  { publicKey }: { publicKey?: PublicKey } = {},
): Promise<SchnorrSignature> {
  const k = pg.randomScalar();
  const commitment = pg.mulSecret(pg.P, k);
  const c = await challenge(commitment, publicKey ?? signer.publicKey, message);
  return new SchnorrSignature(commitment, signer.schnorrResponse(k, c));
}

export async function verify(
  signature: SchnorrSignature,
  message: Uint8Array,
  publicKey: PublicKey,
): Promise<void> {
  const c = await challenge(signature.commitment, publicKey, message);
  const left = pg.P.multiply(signature.response);
  const right = signature.commitment.add(publicKey.point.multiply(c));
  if (!left.equals(right)) throw new InvalidSignature();
}
