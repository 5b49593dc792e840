/**
 * The media worker: runs every frame of a participant's senders and receivers through
 * its `FrameCipher`, off the page's main thread. Loaded as a module worker by
 * `VeilMedia`; frames arrive through WebRTC Encoded Transform (`rtctransform` events
 * from `RTCRtpScriptTransform`) or, where a browser lacks it, as the legacy
 * `createEncodedStreams` pair posted by the page. It imports nothing outside
 * `web/src/crypto` and `web/src/media` (workers get no import map).
 */

import { FrameCipher } from "./cipher.js";
import { emptyCounters } from "./counters.js";
import type { EncodedFrame } from "./frames.js";
import type { FromWorker, MediaReport, ToWorker, TransformOptions } from "./messages.js";
import { type Deliver, Receiving } from "./receive.js";
import { Sending } from "./send.js";

interface ScriptTransformer {
  readable: ReadableStream<EncodedFrame>;
  writable: WritableStream<EncodedFrame>;
  options: TransformOptions;
  generateKeyFrame?: () => Promise<unknown>;
  sendKeyFrameRequest?: () => Promise<unknown>;
}

interface WorkerScope {
  postMessage(message: FromWorker): void;
  onmessage: ((event: MessageEvent<ToWorker>) => void) | null;
  onrtctransform: ((event: { transformer: ScriptTransformer }) => void) | null;
}

const scope = globalThis as unknown as WorkerScope;
const clock = (): number => performance.now();
let grace = 0;
let resolveCipher: (cipher: FrameCipher) => void = () => {};
const ready = new Promise<FrameCipher>((resolve) => {
  resolveCipher = resolve;
});
let current: FrameCipher | undefined;
const receivers = new Map<number, { receiving: Receiving; deliver: Deliver }>();
const firstOpened: Record<string, number> = {};

/** A frame whose handling failed unexpectedly is dropped and reported, and the stream
 * goes on: one bad frame must not stop a track for good. Messages name no secret. */
function guarded(transform: TransformerTransformCallback<EncodedFrame, EncodedFrame>): TransformerTransformCallback<EncodedFrame, EncodedFrame> {
  return async (frame, controller) => {
    try {
      await transform(frame, controller);
    } catch (error) {
      scope.postMessage({ type: "error", message: `frame dropped: ${(error as Error).name}: ${(error as Error).message}` });
    }
  };
}

function quietly(request: (() => Promise<unknown>) | undefined): () => void {
  return () => void request?.().catch(() => {});
}

async function attach(
  readable: ReadableStream<EncodedFrame>,
  writable: WritableStream<EncodedFrame>,
  options: TransformOptions,
  transformer?: ScriptTransformer,
): Promise<void> {
  const cipher = await ready;
  let transform: Transformer<EncodedFrame, EncodedFrame>;
  if (options.side === "send") {
    const keyFrame = quietly(transformer?.generateKeyFrame?.bind(transformer));
    transform = new Sending(cipher, options.stream ?? 0, options.kind, keyFrame).transformer();
  } else {
    const keyFrame = quietly(transformer?.sendKeyFrameRequest?.bind(transformer));
    const receiving = new Receiving(cipher, options.kind, grace, clock, options.sender, keyFrame);
    let deliver: Deliver = () => {};
    transform = {
      start: (controller) => {
        deliver = (frame, epoch) => {
          const key = epoch.toString();
          firstOpened[key] ??= performance.timeOrigin + performance.now();
          controller.enqueue(frame);
        };
        receivers.set(options.id, { receiving, deliver });
      },
      transform: (frame) => receiving.receive(frame, deliver),
    };
  }
  if (transform.transform) transform.transform = guarded(transform.transform);
  await readable.pipeThrough(new TransformStream(transform)).pipeTo(writable).catch(() => {});
  receivers.delete(options.id);
}

function report(): MediaReport {
  const counters = current ? { ...current.counters } : emptyCounters();
  counters.pending = [...receivers.values()].reduce((n, r) => n + r.receiving.pending, 0);
  return { counters, epoch: current?.epochs.current, firstOpened: { ...firstOpened } };
}

scope.onrtctransform = (event) => {
  const { transformer } = event;
  void attach(transformer.readable, transformer.writable, transformer.options, transformer);
};

scope.onmessage = (event) => {
  const message = event.data;
  switch (message.type) {
    case "init":
      if (current !== undefined) return;
      grace = message.grace;
      current = new FrameCipher({ meetingId: message.meetingId, sender: message.sender, grace, clock, suite: message.suite });
      resolveCipher(current);
      return;
    case "key":
      if (current?.setKey(message.epoch, message.key)) {
        for (const { receiving, deliver } of receivers.values()) void receiving.retry(deliver);
      }
      message.key.fill(0); // the clone that crossed into this worker; the cipher copied it
      return;
    case "forget":
      current?.forget();
      for (const { receiving } of receivers.values()) receiving.clear();
      return;
    case "bind": {
      const entry = receivers.get(message.id);
      if (entry) entry.receiving.bound = message.sender;
      return;
    }
    case "streams":
      void attach(message.readable, message.writable, message.options);
      return;
    case "counters":
      scope.postMessage({ type: "counters", request: message.request, report: report() });
      return;
  }
};
