/**
 * The receiving side of one `RTCRtpReceiver`: frames opened in arrival order; a frame
 * of an epoch not held yet (its sender got the new key first) waits, up to the grace
 * period and `PENDING_LIMIT` frames, for the key, then is dropped and counted as
 * `unknown_epoch`. Frames of one receiver are handled one at a time, in order, whether
 * they come from the network or are released by a key (a sender switches epochs once,
 * so the frames that wait for a key precede those that arrive after it).
 */

import type { FrameCipher } from "./cipher.js";
import { type EncodedFrame, frameCodec, setFrameData } from "./frames.js";
import type { Kind } from "./layout.js";

export const PENDING_LIMIT = 512;
const KEY_FRAME_REQUEST_INTERVAL = 1000; // ms

/** Hands on a frame that opened, with the epoch it was sealed in. */
export type Deliver = (frame: EncodedFrame, epoch: bigint) => void;

interface Waiting {
  since: number;
  frame: EncodedFrame;
}

export class Receiving {
  #pending: Waiting[] = [];
  #chain: Promise<void> = Promise.resolve();
  #broken = false;
  #lastRequest = Number.NEGATIVE_INFINITY;
  #triedWith = -1; // the cipher's key version the waiting frames were last tried with

  constructor(
    private readonly cipher: FrameCipher,
    readonly kind: Kind,
    private readonly grace: number,
    private readonly clock: () => number,
    /** The sender number this receiver's track belongs to, when the page knows it. */
    public bound: bigint | undefined = undefined,
    /** Asks the remote sender for a key frame (`RTCRtpScriptTransformer.sendKeyFrameRequest`). */
    private readonly keyFrame: () => void = () => {},
  ) {}

  get pending(): number {
    return this.#pending.length;
  }

  /** Handle a frame from the network; `deliver` gets each frame that opens. */
  receive(frame: EncodedFrame, deliver: Deliver): Promise<void> {
    return this.#serial(async () => {
      // A waiting frame does not hold back the ones behind it: a made-up KID must not
      // stall a sender's video for the grace period.
      this.#expire();
      // Frames released by a key go first, in arrival order, then this one. (Only when a
      // key came since they were last tried: waiting frames cost nothing per new frame.)
      if (this.#pending.length > 0 && this.#triedWith !== this.cipher.keyVersion) await this.#drain(deliver);
      await this.#open(frame, this.clock(), deliver);
    });
  }

  /** Release the waiting frames that open now (a key arrived). */
  retry(deliver: Deliver): Promise<void> {
    return this.#serial(async () => {
      this.#expire();
      await this.#drain(deliver);
    });
  }

  /** Drop every waiting frame (the keys are gone). */
  clear(): void {
    for (let i = 0; i < this.#pending.length; i++) this.cipher.countWaitedOut();
    this.#pending = [];
  }

  transformer(): Transformer<EncodedFrame, EncodedFrame> {
    return {
      transform: (frame, controller) => this.receive(frame, (f) => controller.enqueue(f)),
    };
  }

  #serial(work: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(work);
    this.#chain = next.catch(() => {});
    return next;
  }

  async #drain(deliver: Deliver): Promise<void> {
    this.#triedWith = this.cipher.keyVersion;
    const waiting = this.#pending;
    this.#pending = [];
    for (const { since, frame } of waiting) await this.#open(frame, since, deliver);
  }

  async #open(frame: EncodedFrame, since: number, deliver: Deliver): Promise<void> {
    const opened = await this.cipher.open(frameCodec(frame, this.kind), new Uint8Array(frame.data), this.bound);
    if (opened.kind === "wait") {
      this.#wait(frame, since);
      return;
    }
    if (opened.kind === "drop") {
      this.#broken = true;
      return;
    }
    setFrameData(frame, opened.data);
    deliver(frame, opened.epoch);
    if (this.#broken && this.kind === "video") {
      // Frames were lost: the decoder needs a key frame before the next deltas decode.
      this.#broken = false;
      const now = this.clock();
      if (now - this.#lastRequest >= KEY_FRAME_REQUEST_INTERVAL) {
        this.#lastRequest = now;
        this.keyFrame();
      }
    }
  }

  #wait(frame: EncodedFrame, since: number): void {
    if (this.#pending.length >= PENDING_LIMIT) {
      this.#pending.shift();
      this.cipher.countWaitedOut();
    }
    this.#pending.push({ since, frame });
  }

  #expire(): void {
    this.cipher.expire();
    const now = this.clock();
    while (this.#pending.length > 0 && now - (this.#pending[0]?.since ?? now) > this.grace) {
      this.#pending.shift();
      this.cipher.countWaitedOut();
      this.#broken = true;
    }
  }
}
