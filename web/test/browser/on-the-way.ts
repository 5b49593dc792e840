/**
 * What a malicious SFU (or anyone on the network path) can do to a frame Veil already
 * sealed, for the end-to-end test through Janus (veil.webrtc.e2ee, step "altered on the
 * way"): it holds no key, so it can only change bytes, resend old frames, or rewrite the
 * SFrame header. Applied after the real worker's encryption (e2ee-worker.ts), to every
 * `every`-th frame of a stream, the kinds in turn:
 *
 * - `tamper`: one bit of the AES-GCM tag flipped;
 * - `replay`: the honest frame sealed two frames before sent again in place of this one;
 * - `kid`: the KID rewritten to another member's sender number (same epoch and stream);
 * - `epoch`: the KID rewritten to an epoch no one holds.
 *
 * The receivers (the real worker) must count them as `tampered`, `replayed`,
 * `wrong_sender` and `unknown_epoch`, and decode the honest frames between them.
 */

import { encodeHeader, parseHeader } from "../../src/crypto/sframe.js";
import { mediaKid, parseMediaKid } from "../../src/crypto/schedule.js";
import { clearBytes } from "../../src/media/layout.js";

export const ALTERATIONS = ["tamper", "replay", "kid", "epoch"] as const;
export type Alteration = (typeof ALTERATIONS)[number];

/** The frame with its SFrame KID replaced by `kid` (the clear bytes and the rest kept). */
export function withKid(codec: string, sealed: Uint8Array, kid: (old: bigint) => bigint): Uint8Array {
  const n = clearBytes(codec, sealed);
  const header = parseHeader(sealed.subarray(n));
  const rewritten = encodeHeader(kid(header.kid), header.ctr);
  const out = new Uint8Array(n + rewritten.length + sealed.length - n - header.size);
  out.set(sealed.subarray(0, n));
  out.set(rewritten, n);
  out.set(sealed.subarray(n + header.size), n + rewritten.length);
  return out;
}

/** `alteration` applied to `sealed`; `earlier` is the honest frame sealed two before. */
export function alter(
  alteration: Alteration,
  codec: string,
  sealed: Uint8Array,
  earlier: Uint8Array,
  other: bigint,
): Uint8Array {
  switch (alteration) {
    case "tamper": {
      const out = Uint8Array.from(sealed);
      out[out.length - 1] = (out[out.length - 1] ?? 0) ^ 1;
      return out;
    }
    case "replay":
      return Uint8Array.from(earlier);
    case "kid":
      return withKid(codec, sealed, (kid) => {
        const { epoch, stream } = parseMediaKid(kid);
        return mediaKid(epoch, other, stream);
      });
    case "epoch":
      return withKid(codec, sealed, (kid) => {
        const { epoch, sender, stream } = parseMediaKid(kid);
        return mediaKid((epoch + 0x8000n) & 0xffffn, sender, stream);
      });
  }
}

/** One stream's alterations: `next` is each sealed frame's replacement (or itself). */
export class OnTheWay {
  readonly #history: Uint8Array[] = []; // the last honest frames, oldest first
  #count = 0;
  #turn = 0;

  constructor(
    private readonly every: number,
    /** Counts per alteration, shared by a page's streams. */
    readonly altered: Record<Alteration, number>,
  ) {
    if (every < 3) throw new RangeError("every: at least 3, so the replayed frame was itself honest");
  }

  /** `other`: the sender number `kid` rewrites to; `undefined` leaves frames alone. */
  next(codec: string, sealed: Uint8Array, other: bigint | undefined): Uint8Array {
    const earlier = this.#history.length >= 2 ? this.#history[this.#history.length - 2] : undefined;
    this.#history.push(sealed.slice()); // a frame's buffer is the browser's to reuse
    if (this.#history.length > 2) this.#history.shift();
    if (other === undefined) return sealed;
    if (++this.#count % this.every !== 0 || earlier === undefined) return sealed;
    const alteration = ALTERATIONS[this.#turn++ % ALTERATIONS.length] ?? "tamper";
    this.#history.pop(); // what was sent in its place is not an honest frame to replay
    this.altered[alteration] += 1;
    return alter(alteration, codec, sealed, earlier, other);
  }
}

export function noAlterations(): Record<Alteration, number> {
  return { tamper: 0, replay: 0, kid: 0, epoch: 0 };
}
