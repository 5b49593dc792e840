/**
 * The crypto core in a browser page: checks a vector document made by Python (as
 * test/vectors.test.ts does in Node) and times what the browser SDK's benchmark
 * reports (`tools/bench.ts`). Loaded by tests/web_sdk/test_browser.py in headless
 * Chromium, with an import map for @noble; returns plain JSON for the test to read.
 */

import { fromHex, toHex } from "../../src/crypto/encoding.js";
import { EncryptedValue, Plaintext, PrivateKey, decrypt } from "../../src/crypto/pre.js";
import { SFrameReceiver } from "../../src/crypto/sframe.js";
import { measure } from "../../tools/bench.js";
import { inWorker } from "../../tools/sframe-bench.js";

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
  return { checks, ...(await measure(document, runs, inWorker)) };
}
