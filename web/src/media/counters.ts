/**
 * What a participant's frame encryption did, counted per kind as `veil.client.media`'s
 * `MediaCounters`: the page reads them (`VeilMedia.counters()`) to show or alert on.
 */

export interface MediaCounters {
  /** Frames sealed and handed to the packetizer. */
  sent: number;
  /** Frames dropped at the sender because it held no key yet (never sent in the clear). */
  no_key: number;
  decrypted: number;
  /** Frames that failed authentication (or were malformed): a wrong key, or changed bytes. */
  tampered: number;
  /** Frames seen before, or older than the replay window. */
  replayed: number;
  /** Frames of an epoch this participant did not hold within the grace period. */
  unknown_epoch: number;
  /** Frames whose KID names a sender other than the one their receiver is bound to. */
  wrong_sender: number;
  /** Frames waiting now for their epoch's key. */
  pending: number;
}

export type DropReason = "tampered" | "replayed" | "unknown_epoch" | "wrong_sender";

export function emptyCounters(): MediaCounters {
  return { sent: 0, no_key: 0, decrypted: 0, tampered: 0, replayed: 0, unknown_epoch: 0, wrong_sender: 0, pending: 0 };
}
