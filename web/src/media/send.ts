/**
 * The sending side of one `RTCRtpSender`: every frame sealed under this participant's
 * key for the current epoch and its stream number, or dropped while no key is held
 * (a frame is never sent in the clear).
 */

import type { FrameCipher } from "./cipher.js";
import { type EncodedFrame, frameCodec, setFrameData } from "./frames.js";
import type { Kind } from "./layout.js";

export class Sending {
  #starved = false;

  constructor(
    private readonly cipher: FrameCipher,
    readonly stream: number,
    readonly kind: Kind,
    /** Asks the encoder for a key frame (`RTCRtpScriptTransformer.generateKeyFrame`). */
    private readonly keyFrame: () => void = () => {},
  ) {}

  /** Seal `frame` in place; false if it must be dropped. */
  async seal(frame: EncodedFrame): Promise<boolean> {
    const sealed = await this.cipher.seal(this.stream, frameCodec(frame, this.kind), new Uint8Array(frame.data));
    if (sealed === undefined) {
      this.#starved = true;
      return false;
    }
    if (this.#starved) {
      // The frames dropped before the first key were what the next delta frames refer
      // to: start receivers on a key frame instead of waiting for one.
      this.#starved = false;
      this.keyFrame();
    }
    setFrameData(frame, sealed);
    return true;
  }

  transformer(): Transformer<EncodedFrame, EncodedFrame> {
    return {
      transform: async (frame, controller) => {
        if (await this.seal(frame)) controller.enqueue(frame);
      },
    };
  }
}
