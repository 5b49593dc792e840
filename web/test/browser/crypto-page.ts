/**
 * The crypto core in a browser page: checks a vector document made by Python (as
 * test/vectors.test.ts does in Node) and times the operations the browser SDK's
 * benchmark reports. Loaded by tests/web_sdk/test_browser.py in headless Chromium,
 * with an import map for @noble; returns plain JSON for the test to read.
 */

import { fromHex, toHex } from "../../src/crypto/encoding.js";
import { EncryptedValue, Plaintext, PrivateKey, decrypt, encrypt, generateTransformKey } from "../../src/crypto/pre.js";
import { SFrameReceiver, SFrameSender } from "../../src/crypto/sframe.js";
import { SigningKey } from "../../src/crypto/signing.js";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

async function timed(runs: number, work: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await work();
    times.push(performance.now() - start);
  }
  return median(times);
}

// biome-ignore lint: the document is the cross-language vector JSON
export async function run(document: any, runs = 5): Promise<Record<string, unknown>> {
  const checks: Record<string, boolean> = {};
  const chain = document.pre.chains[0];
  const keys = chain.keys.map((k: string) => PrivateKey.fromSecretBytes(fromHex(k)));
  const plaintext = Plaintext.fromSecretBytes(fromHex(chain.plaintext));
  const values = chain.levels.map((v: string) => EncryptedValue.fromBytes(fromHex(v)));
  const origin = await values[0].verify();
  for (const [level, value] of values.entries()) {
    const opened = await decrypt(await value.verify(), keys[level], { origin });
    checks[`decrypt_l${level}`] = opened.equals(plaintext);
  }
  const tampered = fromHex(chain.levels[2]);
  tampered[10] = (tampered[10] ?? 0) ^ 1;
  checks.tampered_refused = await (async () => EncryptedValue.fromBytes(tampered).verify())()
    .then(() => false)
    .catch((e: Error) => ["InvalidSignature", "NotOnCurve", "NotInSubgroup", "NonCanonicalEncoding"].includes(e.name));
  const plan = document.meeting.schedule;
  const receiver = new SFrameReceiver();
  await receiver.addKey(BigInt(plan.kid), fromHex(plan.base_key));
  const metadata = new TextEncoder().encode(plan.meeting_id);
  checks.python_frames = true;
  for (const frame of plan.frames) {
    const payload = await receiver.unprotect(fromHex(frame.frame), metadata);
    checks.python_frames &&= toHex(payload) === frame.payload;
  }

  // Timings (medians of `runs`), as `veil bench web` reports them.
  const level2 = await values[2].verify();
  const signer = await SigningKey.generate();
  const decrypt_l2_ms = await timed(runs, () => decrypt(level2, keys[2], { origin }));
  const encrypt_ms = await timed(runs, () => encrypt(Plaintext.generate(), keys[0].publicKey, signer));
  const transform_key_ms = await timed(runs, () => generateTransformKey(keys[0], keys[1].publicKey, signer));
  const base = crypto.getRandomValues(new Uint8Array(32));
  const sender = await SFrameSender.create(1n, base);
  const frames = new SFrameReceiver();
  await frames.addKey(1n, base);
  const frame = crypto.getRandomValues(new Uint8Array(1200));
  const aes = await crypto.subtle.importKey("raw", base, "AES-GCM", false, ["encrypt", "decrypt"]);
  const iv = new Uint8Array(12);
  const batch = 200;
  const sframe_us = (await timed(runs, async () => {
    for (let i = 0; i < batch; i++) await frames.unprotect(await sender.protect(frame));
  })) * (1000 / batch);
  const aes_gcm_us = (await timed(runs, async () => {
    for (let i = 0; i < batch; i++) {
      const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv }, aes, frame);
      await crypto.subtle.decrypt({ name: "AES-GCM", iv }, aes, sealed);
    }
  })) * (1000 / batch);
  return { checks, decrypt_l2_ms, encrypt_ms, transform_key_ms, sframe_us, aes_gcm_us };
}
