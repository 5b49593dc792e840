/**
 * Epochs, as `veil.client.meeting.epochs`: which session key a client holds, and the
 * rules for taking a new one. Every client applies the same rules to the same board,
 * so all agree:
 *
 * - A key post is taken only with a proof made with the invitation's group key (an
 *   admin's) over its encrypted key, and only if that ciphertext was encrypted and
 *   signed by the device that posted it (`decrypt` with `origin`).
 * - A key post for epoch `n` at board position `seq` replaces the key held if `n` is
 *   newer, or if it is the same epoch posted earlier on the board: two admins may post
 *   one epoch at once, and every client keeps the epoch's first post in board order.
 * - The device that posted the key held manages the meeting.
 * - A client that left, was removed or saw the end installs nothing more.
 */

import type { Plaintext } from "../../crypto/pre.js";
import { sessionKey } from "../../crypto/schedule.js";
import { securityCode } from "../../protocol/members.js";

export { securityCode };

/** What a newly installed key changed (the key itself stays in `Epochs`). */
export interface Installed {
  epoch: bigint;
  members: readonly string[];
  securityCode: string;
  manager: string;
  /** The epoch and manager held before (read at the install, with no wait between). */
  before: bigint | null;
  previousManager: string | null;
}

/** The session keys one client holds: the current epoch's and the previous one's
 * (chat of the previous epoch still opens; the media layer applies its grace). */
export class Epochs {
  epoch: bigint | null = null;
  /** Board position of the installed key's post. */
  seq = 0;
  /** Device id of the installed key's poster. */
  manager: string | null = null;
  members: readonly string[] = [];
  securityCode = "";
  /** Set once the client left, was removed or the meeting ended: nothing installs. */
  closed = false;
  readonly #keys = new Map<bigint, Uint8Array>();

  constructor(readonly meetingId: string) {}

  supersedes(epoch: bigint, seq: number): boolean {
    if (this.closed) return false;
    if (this.epoch === null || epoch > this.epoch) return true;
    return epoch === this.epoch && seq < this.seq;
  }

  /** Hold the key of a key post if it supersedes the one held; what changed, or `null`.
   * The key and code are derived first, and the rule applied after, with no wait in
   * between, so two installs racing cannot both pass it. */
  async install(epoch: bigint, seq: number, plaintext: Plaintext, members: readonly string[], manager: string): Promise<Installed | null> {
    if (!this.supersedes(epoch, seq)) return null;
    const key = await sessionKey(plaintext, this.meetingId, epoch);
    const code = await securityCode(key, epoch, members);
    if (!this.supersedes(epoch, seq)) return null;
    const before = this.epoch;
    const previousManager = this.manager;
    for (const held of [...this.#keys.keys()]) if (held < epoch - 1n || held === epoch) this.#keys.delete(held);
    this.#keys.set(epoch, key);
    this.epoch = epoch;
    this.seq = seq;
    this.manager = manager;
    this.members = Object.freeze([...members]);
    this.securityCode = code;
    return { epoch, members: this.members, securityCode: code, manager, before, previousManager };
  }

  /** A copy of the session key of `epoch`, or `null` (Python's keys are immutable bytes:
   * no caller can write into the key every chat message and frame of the epoch uses). */
  key(epoch: bigint): Uint8Array<ArrayBuffer> | null {
    const key = this.#keys.get(epoch);
    return key === undefined ? null : Uint8Array.from(key);
  }

  /** The epochs whose keys are held, oldest first. */
  heldEpochs(): bigint[] {
    return [...this.#keys.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** Drop every key and take none again. */
  close(): void {
    this.closed = true;
    for (const key of this.#keys.values()) key.fill(0);
    this.#keys.clear();
  }

  held(): number {
    return this.#keys.size;
  }

  toJSON(): Record<string, unknown> {
    return { epoch: this.epoch?.toString() ?? null, manager: this.manager, members: this.members, securityCode: this.securityCode };
  }
}
