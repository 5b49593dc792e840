/**
 * Veil's keys for LiveKit's end-to-end encryption: a `BaseKeyProvider` (livekit-client's
 * E2EE key interface) that gives each participant identity its own key for each Veil
 * epoch, so a platform on LiveKit keeps its SFU and its client SDK and takes only the
 * keys from Veil.
 *
 *     const keys = new VeilKeyProvider({ meetingId: meeting.meetingId, identity, sender: meeting.senderNumber });
 *     keys.setMember(otherIdentity, otherSenderNumber);   // for each member, from the roster
 *     const stop = keys.follow(meetingKeySource(meeting));
 *     const room = new Room({ e2ee: { keyProvider: keys, worker: new Worker(livekitE2eeWorkerUrl) } });
 *
 * What each participant's key is: Veil's SFrame base key for that sender in that epoch
 * (`senderBaseKey(sessionKey, meetingId, epoch, sender, 0)`, what `VeilMedia` derives its
 * SFrame keys from), handed to LiveKit as HKDF key material; LiveKit's worker derives its
 * AES-GCM key from it with its own HKDF salt and info, so the two frame formats never
 * share an AES key. The frame format and its cryptography are LiveKit's (not RFC 9605
 * SFrame: a trailer with the IV and a one-byte key index, the codec's header bytes as
 * AAD, no replay window, no counters of dropped frames by kind). What Veil adds is who
 * holds keys: only the meeting's members, per epoch, a removed member not the next
 * epoch's.
 *
 * Key index: LiveKit carries a key index (a byte) in each frame and keeps a ring of
 * `keyringSize` keys per participant; epoch `e` uses index `e mod keyringSize`. A new
 * epoch's keys are set for every member as soon as the session key arrives (this
 * participant's last, which makes it the index its frames are sent under); the
 * superseded epoch's keys stay for `grace` ms for frames in flight, then every slot they
 * held is overwritten with key material no one has (LiveKit has no call to remove a
 * key). A member removed with `removeMember` gets no key of a later epoch.
 *
 * LiveKit's key ratcheting is off (`ratchetWindowSize` 0, `failureTolerance` -1: a
 * frame that fails never invalidates a key, so forged frames cannot make a receiver
 * drop a member's key); Veil's epochs are the rekeying.
 *
 * Untested against a LiveKit server: this machine cannot run one. The tests
 * (test/livekit.test.ts) drive the real `BaseKeyProvider` in Node.
 */

import { BaseKeyProvider, createKeyMaterialFromBuffer } from "livekit-client";
import { senderBaseKey } from "../crypto/schedule.js";
import type { MediaKeySource } from "../media/source.js";
import { DEFAULT_GRACE } from "../media/veil-media.js";

export interface VeilKeyProviderOptions {
  meetingId: string;
  /** This participant's LiveKit identity and Veil sender number. */
  identity: string;
  sender: bigint;
  /** How long (ms) a superseded epoch's keys still open frames. */
  grace?: number;
  /** LiveKit's keys per participant (2-256; LiveKit's default 16). */
  keyringSize?: number;
  /** LiveKit's AES-GCM key size; 128 (LiveKit's default) is what its non-web SDKs support. */
  keySize?: 128 | 256;
}

/** LiveKit's key index for `epoch`. */
export function keyIndex(epoch: bigint, keyringSize: number): number {
  return Number(epoch % BigInt(keyringSize));
}

export class VeilKeyProvider extends BaseKeyProvider {
  readonly meetingId: string;
  readonly identity: string;
  readonly grace: number;
  readonly keyringSize: number;
  readonly #members = new Map<string, bigint>(); // identity -> sender number
  /** Which epoch each (identity, index) slot holds a real key of. */
  readonly #slots = new Map<string, { identity: string; index: number; epoch: bigint }>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #epoch: bigint | undefined;
  #session: Uint8Array | undefined; // the current epoch's, for members who join during it
  #chain: Promise<void> = Promise.resolve();

  constructor(options: VeilKeyProviderOptions) {
    const keyringSize = options.keyringSize ?? 16;
    if (!Number.isInteger(keyringSize) || keyringSize < 2 || keyringSize > 256) {
      throw new RangeError("keyringSize lies in [2, 256]");
    }
    super({ sharedKey: false, ratchetWindowSize: 0, failureTolerance: -1, keyringSize, keySize: options.keySize ?? 128 });
    this.meetingId = options.meetingId;
    this.identity = options.identity;
    this.grace = options.grace ?? DEFAULT_GRACE;
    this.keyringSize = keyringSize;
    this.#members.set(options.identity, options.sender);
  }

  get epoch(): bigint | undefined {
    return this.#epoch;
  }

  /** `identity` is a member whose frames are sealed under `sender`'s keys (the roster
   * says which sender number each member announced, signed). It gets the current
   * epoch's key at once, if one is held. */
  setMember(identity: string, sender: bigint): Promise<void> {
    return this.#serial(async () => {
      this.#members.set(identity, sender);
      if (this.#epoch !== undefined && this.#session !== undefined && identity !== this.identity) {
        await this.#give(identity, sender, this.#epoch, this.#session);
      }
    });
  }

  /** `identity` left or was removed: no key of a later epoch is set for it (the ones it
   * has go with their epoch, after the grace period). */
  removeMember(identity: string): void {
    if (identity === this.identity) throw new RangeError("removeMember: this participant; use forget");
    this.#members.delete(identity);
  }

  /** Hold `epoch`'s session key (32 bytes): every member's key for it is set, this
   * participant's last (its frames switch to it); the superseded epoch's keys are
   * overwritten after the grace period. An older epoch is ignored. */
  setEpochKey(epoch: bigint, sessionKey: Uint8Array): Promise<void> {
    if (sessionKey.length !== 32) throw new RangeError("a session key is 32 bytes");
    const session = Uint8Array.from(sessionKey);
    return this.#serial(async () => {
      const previous = this.#epoch;
      if (previous !== undefined && epoch < previous) {
        session.fill(0);
        return;
      }
      this.#session?.fill(0);
      this.#session = session;
      this.#epoch = epoch;
      const members = [...this.#members].sort(([a], [b]) => Number(a === this.identity) - Number(b === this.identity));
      for (const [identity, sender] of members) await this.#give(identity, sender, epoch, session);
      if (previous !== undefined && previous !== epoch) {
        const timer = setTimeout(() => {
          this.#timers.delete(timer);
          void this.#serial(() => this.#drop((slot) => slot.epoch === previous));
        }, this.grace);
        this.#timers.add(timer);
      }
    });
  }

  /** Feed this provider from a meeting (`meetingKeySource(meeting)`): its session keys
   * per epoch, and `forget` when it holds none any more. Returns the unsubscribe. */
  follow(source: MediaKeySource): () => void {
    const offKey = source.onSessionKey((epoch, key) => void this.setEpochKey(epoch, key));
    const offLeave = source.onLeave(() => void this.forget());
    return () => {
      offKey();
      offLeave();
    };
  }

  /** Overwrite every key set so far (this participant left, or the meeting ended). */
  forget(): Promise<void> {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    return this.#serial(async () => {
      this.#session?.fill(0);
      this.#session = undefined;
      this.#epoch = undefined;
      await this.#drop(() => true);
    });
  }

  /** Veil's epochs are the rekeying: LiveKit's ratchet would derive keys Veil never gave. */
  override ratchetKey(): void {
    throw new Error("VeilKeyProvider: keys change with Veil's epochs, not by ratcheting");
  }

  toJSON(): string {
    return `VeilKeyProvider(meeting=${this.meetingId}, identity=${this.identity}, epoch=${this.#epoch ?? "none"}, members=${this.#members.size})`;
  }

  async #give(identity: string, sender: bigint, epoch: bigint, session: Uint8Array): Promise<void> {
    const base = await senderBaseKey(session, this.meetingId, epoch, sender, 0);
    const bytes = new Uint8Array(base); // its own whole ArrayBuffer, as LiveKit takes it
    const material = await createKeyMaterialFromBuffer(bytes.buffer);
    base.fill(0);
    bytes.fill(0); // imported (copied) into the CryptoKey
    const index = keyIndex(epoch, this.keyringSize);
    this.#slots.set(`${identity}\u0000${index}`, { identity, index, epoch });
    this.onSetEncryptionKey(material, identity, index);
  }

  /** Overwrite the slots `which` picks with key material no one holds; then set this
   * participant's current key again, so LiveKit's "latest key index" (its sending key
   * after a reconnect) stays the current epoch's. */
  async #drop(which: (slot: { epoch: bigint }) => boolean): Promise<void> {
    for (const [name, slot] of this.#slots) {
      if (!which(slot)) continue;
      this.#slots.delete(name);
      const nobodys = await createKeyMaterialFromBuffer(crypto.getRandomValues(new Uint8Array(32)).buffer);
      this.onSetEncryptionKey(nobodys, slot.identity, slot.index);
    }
    const sender = this.#members.get(this.identity);
    if (this.#epoch !== undefined && this.#session !== undefined && sender !== undefined) {
      await this.#give(this.identity, sender, this.#epoch, this.#session);
    }
  }

  #serial(work: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(work);
    this.#chain = next.catch(() => {});
    return next;
  }
}
