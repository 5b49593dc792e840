/**
 * SFrame's per-frame cost against bare AES-GCM: the one definition that `veil bench
 * web`, the browser demo (`veil demo --browser`) and the media tests report.
 *
 * - SFrame: a frame of `size` bytes sealed and opened as the media worker does it
 *   (`FrameCipher.seal` then `FrameCipher.open`: the codec's clear bytes, the header,
 *   the metadata, counters, the replay window), suite 5, AES-256-GCM.
 * - The baseline: one WebCrypto AES-256-GCM `encrypt` and one `decrypt` of the same
 *   bytes SFrame encrypts (the frame less its clear bytes), with additional data as long
 *   as SFrame's (RFC 9605 §4.4.3: header ‖ metadata, the metadata being the meeting id
 *   and the clear bytes), in the same thread.
 *
 * In browsers it runs in a worker (`inWorker`, `sframe-bench-worker.ts`), as the real
 * frames are; in Node, in the calling thread. Each time is the median, over `runs`
 * batches of `BATCH` frames, of a batch's mean in µs per frame; the kinds of work take
 * turns batch by batch, so a machine whose speed drifts slows them alike. `ratio` is the
 * median over the runs of SFrame's round trip over the baseline's in the same run. Seal,
 * encrypt, open and decrypt are timed alone as well (open on a batch of frames sealed
 * just before, under another KID).
 */

import { FrameCipher } from "../src/media/cipher.js";
import { clearBytes } from "../src/media/layout.js";
import { readHeader } from "../src/crypto/sframe.js";

export const BATCH = 500;
const MEETING = "bench";

/** What the browser demo and `veil bench web` measure: an audio frame and a video one. */
export const CASES: readonly { codec: string; size: number }[] = [
  { codec: "audio/opus", size: 100 },
  { codec: "video/vp8", size: 1200 },
];

export interface SFrameBench {
  codec: string;
  size: number;
  runs: number;
  /** Bytes of additional data, SFrame's and the baseline's. */
  aad_bytes: number;
  sframe_us: number;
  aes_gcm_us: number;
  /** The median of the runs' ratios (see above): the figure to compare with a target. */
  ratio: number;
  /** `sframe_us / aes_gcm_us`; far from `ratio` when load came and went meanwhile. */
  ratio_of_medians: number;
  seal_us: number;
  encrypt_us: number;
  open_us: number;
  decrypt_us: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

interface Work {
  /** Untimed, before each batch. */
  prepare?: () => Promise<void>;
  run: () => Promise<unknown>;
}

/** µs per call of each of `works`, batch by batch: `times[w][r]` is work `w`'s mean in
 * run `r`. The works take turns, starting one further on in each run, so neither drift
 * nor a fixed position in the order (after whose garbage?) favours one of them. */
async function perFrame(runs: number, works: Work[]): Promise<number[][]> {
  const times: number[][] = works.map(() => new Array<number>(runs).fill(0));
  for (let r = 0; r < runs; r++) {
    for (let k = 0; k < works.length; k++) {
      const w = (r + k) % works.length;
      const { prepare, run } = works[w] as Work;
      await prepare?.();
      const start = performance.now();
      for (let i = 0; i < BATCH; i++) await run();
      (times[w] as number[])[r] = ((performance.now() - start) * 1000) / BATCH;
    }
  }
  return times;
}

async function sealed(cipher: FrameCipher, stream: number, codec: string, frame: Uint8Array): Promise<Uint8Array> {
  const out = await cipher.seal(stream, codec, frame);
  if (out === undefined) throw new Error("the benchmark's sender has no key");
  return out;
}

/** SFrame against bare AES-256-GCM on frames of `size` bytes of `codec`. */
export async function sframeAgainstAesGcm(size: number, codec: string, runs: number): Promise<SFrameBench> {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sender = new FrameCipher({ meetingId: MEETING, sender: 1n, grace: 5000 });
  const receiver = new FrameCipher({ meetingId: MEETING, sender: 2n, grace: 5000 });
  sender.setKey(1n, key);
  receiver.setKey(1n, key);
  const frame = crypto.getRandomValues(new Uint8Array(size));
  frame[0] = (frame[0] ?? 0) | 1; // a VP8 delta frame, if codec says VP8
  const open = async (data: Uint8Array): Promise<void> => {
    if ((await receiver.open(codec, data)).kind !== "frame") throw new Error("the benchmark's frame did not open");
  };
  // Warm up: derive the keys, let the JIT settle.
  for (let i = 0; i < 100; i++) await open(await sealed(sender, 0, codec, frame));
  // Frames sealed ahead of each batch, for timing the receiving side alone: on stream 1,
  // another KID with its own replay window, which the frames sealed and opened meanwhile
  // leave alone. One batch at a time: frames held by the thousand would make every
  // garbage collection, and so the work that allocates most, dearer than in a real worker.
  const ahead: Uint8Array[] = [];
  let next = 0;
  const sealAhead = async (): Promise<void> => {
    for (let i = 0; i < BATCH; i++) ahead[i] = await sealed(sender, 1, codec, frame);
    next = 0;
  };

  // The baseline: the bytes SFrame encrypts, additional data as long as SFrame's.
  const n = clearBytes(codec, frame);
  const sample = await sealed(sender, 0, codec, frame);
  const aadBytes = readHeader(sample.subarray(n)).size + new TextEncoder().encode(MEETING).length + n;
  const plain = frame.slice(n);
  const additionalData = crypto.getRandomValues(new Uint8Array(aadBytes));
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const aes = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt", "decrypt"]);
  const gcm = { name: "AES-GCM", iv, additionalData };
  const ciphertext = await crypto.subtle.encrypt(gcm, aes, plain);

  const times = await perFrame(runs, [
    { run: async () => open(await sealed(sender, 0, codec, frame)) },
    { run: async () => crypto.subtle.decrypt(gcm, aes, await crypto.subtle.encrypt(gcm, aes, plain)) },
    { run: () => sealed(sender, 0, codec, frame) },
    { run: () => crypto.subtle.encrypt(gcm, aes, plain) },
    { prepare: sealAhead, run: () => open(ahead[next++] as Uint8Array) },
    { run: () => crypto.subtle.decrypt(gcm, aes, ciphertext) },
  ]);
  const [sframe_us, aes_gcm_us, seal_us, encrypt_us, open_us, decrypt_us] = times.map(median) as number[];
  // The ratio of each run's two round trips, timed one after the other, then the median:
  // load that comes and goes on a shared machine falls on both sides of each ratio.
  const [sframe = [], bare = []] = times;
  const ratio = median(sframe.map((t, r) => t / (bare[r] as number)));
  return {
    codec,
    size,
    runs,
    aad_bytes: aadBytes,
    sframe_us: sframe_us as number,
    aes_gcm_us: aes_gcm_us as number,
    ratio,
    ratio_of_medians: (sframe_us as number) / (aes_gcm_us as number),
    seal_us: seal_us as number,
    encrypt_us: encrypt_us as number,
    open_us: open_us as number,
    decrypt_us: decrypt_us as number,
  };
}

/** `sframeAgainstAesGcm` in a worker of this page (browsers only). */
export function inWorker(size: number, codec: string, runs: number): Promise<SFrameBench> {
  const worker = new Worker(new URL("./sframe-bench-worker.js", import.meta.url), { type: "module" });
  return new Promise((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<SFrameBench | { error: string }>) => {
      worker.terminate();
      if ("error" in event.data) reject(new Error(event.data.error));
      else resolve(event.data);
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(event.message));
    };
    worker.postMessage({ size, codec, runs });
  });
}
