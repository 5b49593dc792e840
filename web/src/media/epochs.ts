/**
 * The session keys a participant's frame encryption holds, by epoch, as
 * `veil.client.media.MeetingMedia.install` keeps them: a new epoch becomes current at
 * once (the sender switches to it), the one it supersedes stays for `grace` ms so
 * frames in flight still open, then is forgotten. An epoch older than the current one
 * is ignored; a different key for the current epoch replaces it (two managers raced and
 * the board's first key post won).
 */

import { bytesEqual } from "../crypto/encoding.js";

const EPOCH_MASK = 0xffffn;

export class EpochKeys {
  readonly #keys = new Map<bigint, Uint8Array>();
  readonly #expires = new Map<bigint, number>();
  current: bigint | undefined;

  constructor(
    private readonly grace: number,
    private readonly clock: () => number,
  ) {}

  /** The epochs whose derived keys must be dropped: the one replaced, if any. */
  install(epoch: bigint, sessionKey: Uint8Array): { changed: boolean; dropped: bigint[] } {
    const current = this.current;
    if (current !== undefined && epoch < current) return { changed: false, dropped: [] };
    const dropped: bigint[] = [];
    if (epoch === current) {
      const held = this.#keys.get(epoch);
      if (held !== undefined && bytesEqual(held, sessionKey)) return { changed: false, dropped };
      this.drop(epoch);
      dropped.push(epoch);
    } else if (current !== undefined) {
      this.#expires.set(current, this.clock() + this.grace);
    }
    this.#keys.set(epoch, Uint8Array.from(sessionKey));
    this.current = epoch;
    return { changed: true, dropped };
  }

  /** The session key of the current epoch, if any. */
  currentKey(): Uint8Array | undefined {
    return this.current === undefined ? undefined : this.#keys.get(this.current);
  }

  /** The held epoch whose low 16 bits (as a KID carries them) are `low`. */
  find(low: bigint): { epoch: bigint; key: Uint8Array } | undefined {
    for (const [epoch, key] of this.#keys) if ((epoch & EPOCH_MASK) === low) return { epoch, key };
    return undefined;
  }

  /** Forget superseded epochs whose grace is over; returns them. */
  expire(): bigint[] {
    const now = this.clock();
    const gone: bigint[] = [];
    for (const [epoch, deadline] of this.#expires) {
      if (now >= deadline) {
        this.drop(epoch);
        gone.push(epoch);
      }
    }
    return gone;
  }

  drop(epoch: bigint): void {
    this.#keys.get(epoch)?.fill(0);
    this.#keys.delete(epoch);
    this.#expires.delete(epoch);
    if (epoch === this.current) this.current = undefined;
  }

  forget(): bigint[] {
    const all = [...this.#keys.keys()];
    for (const epoch of all) this.drop(epoch);
    return all;
  }

  get epochs(): bigint[] {
    return [...this.#keys.keys()];
  }

  toJSON(): string {
    return `EpochKeys(epochs=${this.epochs.join(",")})`;
  }
}
