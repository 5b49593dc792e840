/**
 * The media worker (web/src/media/worker.ts, unchanged) with a tap in front of each
 * sender's transform, for the end-to-end test through Janus (veil.webrtc.e2ee): every
 * frame the encoder produced, before SFrame sealed it, is digested (the first 16 bytes
 * of its SHA-256, in hex, as count-worker.ts does), and a sample of whole video frames
 * is kept, so the test can look for them in what Janus recorded. The page reads them
 * over a BroadcastChannel (the real worker owns the worker's own message port).
 *
 * Behind each sender's transform, after SFrame sealed the frame, sits what a malicious
 * SFU could do to it (on-the-way.ts): off until the page names, on the channel
 * "veil-e2ee-alter", another member's sender number to rewrite KIDs to.
 */

import "../../src/media/worker.js";
import { type EncodedFrame, frameCodec, setFrameData } from "../../src/media/frames.js";
import { OnTheWay, noAlterations } from "./on-the-way.js";

const inWorker = "WorkerGlobalScope" in globalThis; // `node --test dist/test/` loads this file too
const KEPT = 3000;
const SAMPLE_EVERY = 15; // one video frame in 15 kept whole
const SAMPLES = 40;
const ALTER_EVERY: Record<"audio" | "video", number> = { audio: 5, video: 15 }; // video: about 1 a second

interface Transformer {
  readonly readable: ReadableStream<EncodedFrame>;
  readonly writable: WritableStream<EncodedFrame>;
  readonly options: { side: "send" | "receive"; kind: "audio" | "video" };
  generateKeyFrame?: () => Promise<unknown>;
  sendKeyFrameRequest?: () => Promise<unknown>;
}

async function hex16(data: ArrayBuffer): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return [...hash.subarray(0, 16)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

function base64(data: ArrayBuffer): string {
  let text = "";
  for (const byte of new Uint8Array(data)) text += String.fromCharCode(byte);
  return btoa(text);
}

if (inWorker) {
  const scope = globalThis as unknown as { onrtctransform: (event: { transformer: Transformer }) => void };
  const real = scope.onrtctransform;
  const channel = new BroadcastChannel("veil-e2ee-plain");
  const plain: Record<string, string[]> = { audio: [], video: [] };
  const samples: string[] = [];
  const altered = noAlterations();
  let other: bigint | undefined;
  const alterations = new BroadcastChannel("veil-e2ee-alter");
  alterations.onmessage = (event: MessageEvent<{ other: string | null }>) => {
    other = event.data.other === null ? undefined : BigInt(event.data.other);
  };
  let reporting: ReturnType<typeof setInterval> | undefined;
  scope.onrtctransform = ({ transformer }) => {
    if (transformer.options.side !== "send") return real({ transformer });
    reporting ??= setInterval(() => channel.postMessage({ plain, samples, altered }), 500);
    const { kind } = transformer.options;
    const digests = plain[kind] ?? [];
    let count = 0;
    const tap = new TransformStream<EncodedFrame, EncodedFrame>({
      async transform(frame, controller) {
        if (digests.length < KEPT) digests.push(await hex16(frame.data));
        if (kind === "video" && ++count % SAMPLE_EVERY === 0 && samples.length < SAMPLES) samples.push(base64(frame.data));
        controller.enqueue(frame);
      },
    });
    const onTheWay = new OnTheWay(ALTER_EVERY[kind], altered);
    const sealed = new TransformStream<EncodedFrame, EncodedFrame>({
      transform(frame, controller) {
        const data = onTheWay.next(frameCodec(frame, kind), new Uint8Array(frame.data), other);
        if (data.buffer !== frame.data) setFrameData(frame, data);
        controller.enqueue(frame);
      },
    });
    void sealed.readable.pipeTo(transformer.writable).catch(() => {});
    const tapped: Transformer = { readable: transformer.readable.pipeThrough(tap), writable: sealed.writable, options: transformer.options };
    if (transformer.generateKeyFrame) tapped.generateKeyFrame = transformer.generateKeyFrame.bind(transformer);
    real({ transformer: tapped });
  };
}
