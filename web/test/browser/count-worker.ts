/**
 * A pass-through WebRTC Encoded Transform worker for tests/webrtc: counts the encoded
 * frames of each transform by the name the page gave it, forwards them unchanged (or,
 * given `drop`, discards them), and posts the counts to the page twice a second.
 */

interface EncodedTransformer {
  readonly readable: ReadableStream<unknown>;
  readonly writable: WritableStream<unknown>;
  readonly options: { readonly name: string; readonly drop: boolean };
}

const counts: Record<string, number> = {};
const scope = globalThis as unknown as {
  onrtctransform: (event: { transformer: EncodedTransformer }) => void;
  postMessage: (message: unknown) => void;
};

// Started by the first transform, so that importing this file elsewhere (`node --test`
// loads every file under dist/test) starts nothing.
let reporting: ReturnType<typeof setInterval> | undefined;

scope.onrtctransform = ({ transformer }) => {
  reporting ??= setInterval(() => scope.postMessage({ ...counts }), 500);
  const { name, drop } = transformer.options;
  counts[name] = 0;
  const counter = new TransformStream({
    transform(frame, controller) {
      counts[name] = (counts[name] ?? 0) + 1;
      if (!drop) controller.enqueue(frame);
    },
  });
  transformer.readable.pipeThrough(counter).pipeTo(transformer.writable).catch(() => undefined);
};
