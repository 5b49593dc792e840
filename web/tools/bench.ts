/**
 * The browser SDK's timings, as `veil bench web` reports them: the same code runs in
 * Node (`bench-node.ts`) and in a browser page (test/browser/crypto-page.ts; the
 * benchmark's own page), on a vector document made by Python (`veil.vectors.make`):
 * its level-2 ciphertext comes from the key service's transform, which only Python has.
 *
 * Medians of `runs`: PRE encrypt, level-2 decrypt (with the origin check), transform-key
 * generation and escrow unlock (split-trust password, PBKDF2-SHA256 600,000 and
 * AES-GCM) in ms; and SFrame per frame against bare AES-256-GCM, in µs, for each of
 * `sframe-bench.ts`'s cases (which says what is timed and what the baseline is), run by
 * `sframe`: in a worker in browsers (`inWorker`), in the calling thread in Node.
 * `sframe_us` and `aes_gcm_us` are the 1,200-byte video frame's.
 */

import { fromHex } from "../src/crypto/encoding.js";
import { openEscrow, splitTrustPassword } from "../src/crypto/escrow.js";
import { EncryptedValue, Plaintext, PrivateKey, decrypt, encrypt, generateTransformKey } from "../src/crypto/pre.js";
import { SigningKey } from "../src/crypto/signing.js";
import { CASES, type SFrameBench, sframeAgainstAesGcm } from "./sframe-bench.js";

export const FRAME_SIZE = 1200;

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** The median wall time of `runs` calls of `work`, in ms (after one untimed call). */
export async function timed(runs: number, work: () => Promise<unknown>): Promise<number> {
  await work();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await work();
    times.push(performance.now() - start);
  }
  return median(times);
}

export interface Timings {
  encrypt_ms: number;
  decrypt_l2_ms: number;
  transform_key_ms: number;
  escrow_unlock_ms: number;
  sframe_us: number;
  aes_gcm_us: number;
  sframe: SFrameBench[];
}

// biome-ignore lint: the document is the cross-language vector JSON
export async function measure(document: any, runs = 5, measureSFrame = sframeAgainstAesGcm): Promise<Timings> {
  const chain = document.pre.chains[0];
  const keys = chain.keys.map((k: string) => PrivateKey.fromSecretBytes(fromHex(k)));
  const origin = await EncryptedValue.fromBytes(fromHex(chain.levels[0])).verify();
  const level2 = await EncryptedValue.fromBytes(fromHex(chain.levels[2])).verify();
  const signer = await SigningKey.generate();
  const decrypt_l2_ms = await timed(runs, () => decrypt(level2, keys[2], { origin }));
  const encrypt_ms = await timed(runs, () => encrypt(Plaintext.generate(), keys[0].publicKey, signer));
  const transform_key_ms = await timed(runs, () => generateTransformKey(keys[0], keys[1].publicKey, signer));

  const escrow = document.envelopes.escrow;
  const escrow_unlock_ms = await timed(runs, async () => {
    const password = await splitTrustPassword(fromHex(escrow.keyserver_share), fromHex(escrow.platform_share));
    return openEscrow(fromHex(escrow.blob), password, fromHex(escrow.context));
  });

  const sframe: SFrameBench[] = [];
  for (const { size, codec } of CASES) sframe.push(await measureSFrame(size, codec, runs));
  const video = sframe.find((b) => b.size === FRAME_SIZE) as SFrameBench;
  return {
    encrypt_ms,
    decrypt_l2_ms,
    transform_key_ms,
    escrow_unlock_ms,
    sframe_us: video.sframe_us,
    aes_gcm_us: video.aes_gcm_us,
    sframe,
  };
}
