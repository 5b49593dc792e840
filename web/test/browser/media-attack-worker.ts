/**
 * A dishonest sender's media worker, for the negative tests: it seals frames as the
 * real worker does, then, from the 60th frame on, every 5th frame is sent altered, as
 * `?attack=` says: `tamper` flips a bit of the tag; `replay` resends the frame sealed two
 * frames before; `forge` seals it under another participant's sender number (every
 * member can: all sender keys derive from the session key); `unknown` seals it under an
 * epoch no one holds. The receivers are the real worker.
 */

import { FrameCipher } from "../../src/media/cipher.js";
import { type EncodedFrame, frameCodec, setFrameData } from "../../src/media/frames.js";
import type { ToWorker, TransformOptions } from "../../src/media/messages.js";

const inWorker = "WorkerGlobalScope" in globalThis; // `node --test dist/test/` loads this file too
const attack = inWorker ? new URL(self.location.href).searchParams.get("attack") : null;
const MALLORY = 0xbadn;
const WARMUP = 60;
const EVERY = 5;

let honest: FrameCipher | undefined;
let forger: FrameCipher | undefined;
let stranger: FrameCipher | undefined;

interface Transformer {
  readable: ReadableStream;
  writable: WritableStream;
  options: TransformOptions;
}

function onMessage(event: MessageEvent<ToWorker>): void {
  const m = event.data;
  if (m.type === "init") {
    const options = { meetingId: m.meetingId, grace: m.grace, suite: m.suite };
    honest = new FrameCipher({ ...options, sender: m.sender });
    forger = new FrameCipher({ ...options, sender: MALLORY });
    stranger = new FrameCipher({ ...options, sender: m.sender });
    stranger.setKey(0xbeefn, crypto.getRandomValues(new Uint8Array(32)));
  } else if (m.type === "key") {
    honest?.setKey(m.epoch, m.key);
    forger?.setKey(m.epoch, m.key);
  }
}

function onTransform({ transformer }: { transformer: Transformer }): void {
  const { stream = 0, kind } = transformer.options;
  let count = 0;
  const sent: Uint8Array[] = [];
  const transform = new TransformStream<EncodedFrame, EncodedFrame>({
    async transform(frame, controller) {
      if (honest === undefined || forger === undefined || stranger === undefined) return;
      const codec = frameCodec(frame, kind);
      const data = new Uint8Array(frame.data);
      let sealed = await honest.seal(stream, codec, data);
      if (sealed === undefined) return;
      sent.push(sealed);
      if (sent.length > 3) sent.shift();
      count += 1;
      if (count > WARMUP && count % EVERY === 0) {
        if (attack === "tamper") {
          sealed = Uint8Array.from(sealed);
          sealed[sealed.length - 1] = (sealed[sealed.length - 1] ?? 0) ^ 1;
        } else if (attack === "replay") {
          sealed = sent[0] ?? sealed;
        } else if (attack === "forge") {
          sealed = (await forger.seal(stream, codec, data)) ?? sealed;
        } else if (attack === "unknown") {
          sealed = (await stranger.seal(stream, codec, data)) ?? sealed;
        }
      }
      setFrameData(frame, Uint8Array.from(sealed));
      controller.enqueue(frame);
    },
  });
  void transformer.readable.pipeThrough(transform).pipeTo(transformer.writable);
}

if (inWorker) {
  const scope = globalThis as unknown as {
    onmessage: typeof onMessage;
    onrtctransform: typeof onTransform;
  };
  scope.onmessage = onMessage;
  scope.onrtctransform = onTransform;
}
