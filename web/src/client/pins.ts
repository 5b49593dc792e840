/**
 * Key pinning, as `veil.client.pins`: the first public keys seen for a user (master
 * and identity, `UserKeys.pin`) are remembered; different ones later raise
 * `PinnedKeyChanged` unless the caller accepts the change.
 */

import { bytesEqual } from "../crypto/encoding.js";
import { PinnedKeyChanged } from "./errors.js";

export class KeyPins {
  readonly #pinned: Map<string, Uint8Array>;

  /** `pinned` is shared with the device context, which persists it. */
  constructor(pinned: Map<string, Uint8Array>) {
    this.#pinned = pinned;
  }

  /** Pin `encoded` keys for `userId`; true if the pins changed (to be saved). */
  check(userId: string, encoded: Uint8Array, { acceptChanges = false } = {}): boolean {
    const seen = this.#pinned.get(userId);
    if (seen !== undefined && bytesEqual(seen, encoded)) return false;
    if (seen !== undefined && !acceptChanges) throw new PinnedKeyChanged(userId);
    this.#pinned.set(userId, Uint8Array.from(encoded));
    return true;
  }

  has(userId: string): boolean {
    return this.#pinned.has(userId);
  }

  get(userId: string): Uint8Array | undefined {
    return this.#pinned.get(userId);
  }
}
