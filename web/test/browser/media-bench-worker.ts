/**
 * The worker's per-frame cost of SFrame (seal and open, as the media worker does them)
 * against bare WebCrypto AES-256-GCM (encrypt and decrypt) on the same frame, in a
 * worker as the real frames are. Medians of `runs` batches, in µs per frame.
 */

import { FrameCipher } from "../../src/media/cipher.js";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/** Median µs per call of each of `works`, their batches interleaved so that load on a
 * shared machine falls on all of them alike. */
async function perFrame(runs: number, batch: number, works: (() => Promise<unknown>)[]): Promise<number[]> {
  const times: number[][] = works.map(() => []);
  for (let r = 0; r < runs; r++) {
    for (const [w, work] of works.entries()) {
      const start = performance.now();
      for (let i = 0; i < batch; i++) await work();
      times[w]?.push(((performance.now() - start) * 1000) / batch);
    }
  }
  return times.map(median);
}

async function run(event: MessageEvent<{ runs: number; size: number; codec: string }>): Promise<void> {
  const { runs, size, codec } = event.data;
  const batch = 200;
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sender = new FrameCipher({ meetingId: "bench", sender: 1n, grace: 5000 });
  const receiver = new FrameCipher({ meetingId: "bench", sender: 2n, grace: 5000 });
  sender.setKey(1n, key);
  receiver.setKey(1n, key);
  const frame = crypto.getRandomValues(new Uint8Array(size));
  frame[0] = (frame[0] ?? 0) | 1; // a VP8 delta frame, if codec says VP8
  const aes = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const aad = new TextEncoder().encode("bench");
  // Warm up: derive the keys, let the JIT settle.
  for (let i = 0; i < 50; i++) await receiver.open(codec, (await sender.seal(0, codec, frame)) as Uint8Array);
  // Frames sealed ahead, for timing the receiving side alone: on stream 1, another KID
  // with its own replay window, which the frames sealed and opened meanwhile leave alone.
  const ahead: Uint8Array[] = [];
  for (let i = 0; i < runs * batch; i++) ahead.push((await sender.seal(1, codec, frame)) as Uint8Array);
  const gcm = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, aes, frame));
  let next = 0;
  const [sframe_us = 0, aes_gcm_us = 0, seal_us = 0, encrypt_us = 0, open_us = 0, decrypt_us = 0] = await perFrame(runs, batch, [
    async () => {
      const opened = await receiver.open(codec, (await sender.seal(0, codec, frame)) as Uint8Array);
      if (opened.kind !== "frame") throw new Error("the benchmark's frame did not open");
    },
    async () => {
      const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, aes, frame);
      await crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, aes, sealed);
    },
    () => sender.seal(0, codec, frame),
    () => crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: aad }, aes, frame),
    async () => {
      const opened = await receiver.open(codec, ahead[next++] as Uint8Array);
      if (opened.kind !== "frame") throw new Error("the benchmark's frame did not open");
    },
    () => crypto.subtle.decrypt({ name: "AES-GCM", iv, additionalData: aad }, aes, gcm),
  ]);
  const ratio = sframe_us / aes_gcm_us;
  postMessage({ size, codec, sframe_us, aes_gcm_us, ratio, seal_us, encrypt_us, open_us, decrypt_us });
}

// Only as a worker (`node --test dist/test/` loads this file too).
if ("WorkerGlobalScope" in globalThis) globalThis.onmessage = run;
