/**
 * The contract between a meeting and its frame encryption. The Meeting (in TypeScript,
 * or any code that holds Veil's session keys) is a `MediaKeySource`; `follow` wires it to
 * a `VeilMedia` in one call:
 *
 * - `meetingId`, `sender`: the meeting and this join's sender number (44 random bits,
 *   announced signed on the board; a new join draws a new one).
 * - `onSessionKey(listener)`: calls `listener(epoch, sessionKey)` for the epoch it holds
 *   now, if any, then for each new epoch as soon as it is installed (a key post
 *   decrypted, or this device's own rekey); returns an unsubscribe function.
 * - `onLeave(listener)`: called when this participant holds no key any more (left,
 *   removed, or the meeting ended); every key is then dropped from the worker.
 *
 * Receivers are bound to sender numbers by the page (`attachReceiver(r, { sender })`),
 * since only it knows which participant a track of its SFU belongs to; the Meeting's
 * roster says which sender number each participant announced.
 */

import { VeilMedia, type VeilMediaOptions } from "./veil-media.js";

export interface MediaKeySource {
  readonly meetingId: string;
  readonly sender: bigint;
  onSessionKey(listener: (epoch: bigint, sessionKey: Uint8Array) => void): () => void;
  onLeave(listener: () => void): () => void;
}

/** A `VeilMedia` fed by `source` until it closes; `stop` unsubscribes and closes it. */
export function follow(
  source: MediaKeySource,
  options: Omit<VeilMediaOptions, "meetingId" | "sender"> = {},
): { media: VeilMedia; stop: () => void } {
  const media = new VeilMedia({ ...options, meetingId: source.meetingId, sender: source.sender });
  const offKey = source.onSessionKey((epoch, key) => media.setEpochKey(epoch, key));
  const offLeave = source.onLeave(() => media.forget());
  return {
    media,
    stop: () => {
      offKey();
      offLeave();
      media.close();
    },
  };
}
