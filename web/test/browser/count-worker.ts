/**
 * A pass-through WebRTC Encoded Transform worker for tests/webrtc: counts the encoded
 * frames of each transform by the name the page gave it, forwards them unchanged (or,
 * given `drop`, discards them), and posts the counts to the page twice a second. A
 * sender's transform also keeps a digest of each frame it sends (the first 16 bytes of
 * its SHA-256, in hex), for the test to find those frames in what the SFU recorded.
 */

interface EncodedTransformer {
  readonly readable: ReadableStream<{ data: ArrayBuffer }>;
  readonly writable: WritableStream<{ data: ArrayBuffer }>;
  readonly options: { readonly name: string; readonly drop: boolean; readonly digest: boolean };
}

async function hex16(data: ArrayBuffer): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return [...hash.subarray(0, 16)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

const counts: Record<string, number> = {};
const sent: Record<string, string[]> = {};
const KEPT = 2000;
const scope = globalThis as unknown as {
  onrtctransform: (event: { transformer: EncodedTransformer }) => void;
  postMessage: (message: unknown) => void;
};

// Started by the first transform, so that importing this file elsewhere (`node --test`
// loads every file under dist/test) starts nothing.
let reporting: ReturnType<typeof setInterval> | undefined;

scope.onrtctransform = ({ transformer }) => {
  reporting ??= setInterval(() => scope.postMessage({ counts, sent }), 500);
  const { name, drop, digest } = transformer.options;
  counts[name] = 0;
  const digests: string[] = [];
  if (digest) sent[name] = digests;
  const counter = new TransformStream<{ data: ArrayBuffer }, { data: ArrayBuffer }>({
    async transform(frame, controller) {
      counts[name] = (counts[name] ?? 0) + 1;
      if (digest && digests.length < KEPT) digests.push(await hex16(frame.data));
      if (!drop) controller.enqueue(frame);
    },
  });
  transformer.readable.pipeThrough(counter).pipeTo(transformer.writable).catch(() => undefined);
};
