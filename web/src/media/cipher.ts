/**
 * One participant's frame encryption, the rules of `veil.client.media.MeetingMedia` on
 * encoded WebRTC frames: every (epoch, sender, stream) has its own SFrame base key
 * (`senderBaseKey`) and KID (`mediaKid`), so a frame's KID says who sent it, on which
 * stream, in which epoch. It runs inside the media worker; the page never sees it.
 *
 * `seal` protects a frame under this sender's key for the current epoch, leaving the
 * codec's clear bytes (`layout.ts`) in front and authenticating them. `open` checks, in
 * order: the header parses (else `tampered`); the KID names the sender the receiver is
 * bound to, and not this participant (else `wrong_sender`, before any key or replay
 * window is touched, so a forgery moves no one's window); the epoch is held (else the
 * frame waits, see `receive.ts`); the replay window (`replayed`); the AEAD (`tampered`,
 * and a KID seen first in a failed frame leaves no key behind).
 */

import { DecodeError, DecryptionError } from "../crypto/errors.js";
import { mediaKid, parseMediaKid, senderBaseKey } from "../crypto/schedule.js";
import {
  type CipherSuite,
  DEFAULT_SUITE,
  ReplayedFrame,
  SFrameReceiver,
  SFrameSender,
  UnknownKeyId,
  type Header,
  readHeader,
} from "../crypto/sframe.js";
import { type DropReason, type MediaCounters, emptyCounters } from "./counters.js";
import { EpochKeys } from "./epochs.js";
import { clearBytes } from "./layout.js";

export interface CipherOptions {
  meetingId: string;
  /** This participant's sender number (44 bits, drawn at join and announced, signed). */
  sender: bigint;
  /** How long (ms) a superseded epoch's keys still open frames. */
  grace: number;
  clock?: () => number;
  suite?: CipherSuite;
}

export type Opened =
  | { kind: "frame"; data: Uint8Array; epoch: bigint; sender: bigint; stream: number }
  | { kind: "drop"; reason: DropReason }
  | { kind: "wait" };

/** A receiving key: derived yet or not, and whether it opened a frame or is opening one. */
interface Installed {
  /** Settles when the key is held; `undefined` once it is (no await per frame). */
  ready: Promise<void> | undefined;
  opening: number;
  opened: boolean;
}

const EMPTY = new Uint8Array(0);

export class FrameCipher {
  readonly counters: MediaCounters = emptyCounters();
  /** Changes whenever a key is installed: waiting frames are worth another try. */
  keyVersion = 0;
  readonly meetingId: string;
  readonly sender: bigint;
  readonly epochs: EpochKeys;
  readonly #suite: CipherSuite;
  readonly #meeting: Uint8Array;
  #withClear = new Uint8Array();
  readonly #senders = new Map<number, SFrameSender | Promise<SFrameSender>>(); // stream -> current epoch's
  readonly #receiver = new SFrameReceiver();
  readonly #kids = new Map<bigint, Map<bigint, Installed>>(); // epoch -> KIDs installed

  constructor(options: CipherOptions) {
    this.meetingId = options.meetingId;
    this.sender = options.sender;
    this.#suite = options.suite ?? DEFAULT_SUITE;
    this.#meeting = new TextEncoder().encode(options.meetingId);
    this.epochs = new EpochKeys(options.grace, options.clock ?? (() => performance.now()));
    mediaKid(0n, options.sender); // refuses a sender number out of range, now
  }

  /** Hold `epoch`'s session key; frames are sealed under it from the next one on. */
  setKey(epoch: bigint, sessionKey: Uint8Array): boolean {
    const { changed, dropped } = this.epochs.install(epoch, sessionKey);
    for (const e of dropped) this.#dropKids(e);
    if (changed) {
      this.#senders.clear();
      this.keyVersion += 1;
    }
    return changed;
  }

  /** Drop every key (the participant left, or the meeting ended). */
  forget(): void {
    for (const epoch of this.epochs.forget()) this.#dropKids(epoch);
    this.#senders.clear();
  }

  expire(): void {
    for (const epoch of this.epochs.expire()) this.#dropKids(epoch);
  }

  /** The frame to send, or `undefined` if there is no key yet (the frame must be dropped). */
  async seal(stream: number, codec: string, data: Uint8Array): Promise<Uint8Array | undefined> {
    const epoch = this.epochs.current;
    if (epoch === undefined) {
      this.counters.no_key += 1;
      return undefined;
    }
    let sender = this.#senders.get(stream);
    if (sender === undefined) sender = this.#newSender(stream, epoch, this.epochs.currentKey() as Uint8Array);
    // Once derived, the sender is held as itself: a frame then awaits its AES call only.
    if (!(sender instanceof SFrameSender)) sender = await sender;
    const n = clearBytes(codec, data);
    const sealed =
      n === 0
        ? await sender.protectAfter(EMPTY, data, this.#meeting)
        : await sender.protectAfter(data.subarray(0, n), data.subarray(n), this.#metadata(data.subarray(0, n)));
    this.counters.sent += 1;
    return sealed;
  }

  #newSender(stream: number, epoch: bigint, key: Uint8Array): Promise<SFrameSender> {
    const kid = mediaKid(epoch, this.sender, stream);
    const sender = senderBaseKey(key, this.meetingId, epoch, this.sender, stream)
      .then((base) => SFrameSender.create(kid, base, this.#suite))
      .then((made) => {
        if (this.#senders.get(stream) === sender) this.#senders.set(stream, made);
        return made;
      });
    this.#senders.set(stream, sender);
    return sender;
  }

  /** `bound`: the sender number this receiver's track belongs to, when the page knows it. */
  async open(codec: string, data: Uint8Array, bound?: bigint): Promise<Opened> {
    const n = clearBytes(codec, data);
    const clear = n === 0 ? EMPTY : data.subarray(0, n);
    const frame = n === 0 ? data : data.subarray(n);
    let header: Header;
    let source: { epoch: bigint; sender: bigint; stream: number };
    try {
      header = readHeader(frame);
      source = parseMediaKid(header.kid);
    } catch {
      return this.#drop("tampered");
    }
    const kid = header.kid;
    if (source.sender === this.sender || (bound !== undefined && source.sender !== bound)) {
      return this.#drop("wrong_sender");
    }
    const held = this.epochs.find(source.epoch);
    if (held === undefined) return { kind: "wait" };
    let installed = this.#kids.get(held.epoch);
    if (installed === undefined) {
      installed = new Map<bigint, Installed>();
      this.#kids.set(held.epoch, installed);
    }
    let entry = installed.get(kid);
    if (entry === undefined) entry = this.#install(installed, held, kid, source);
    entry.opening += 1;
    try {
      if (entry.ready !== undefined) await entry.ready;
      const opened = await this.#receiver.unprotectAfter(clear, frame, this.#metadata(clear), header);
      entry.opened = true;
      this.counters.decrypted += 1;
      return { kind: "frame", data: opened, epoch: held.epoch, sender: source.sender, stream: source.stream };
    } catch (error) {
      if (error instanceof ReplayedFrame) return this.#drop("replayed");
      if (!(error instanceof DecryptionError || error instanceof DecodeError || error instanceof UnknownKeyId)) {
        throw error;
      }
      // A made-up KID must not leave a key (and a replay window) behind; but a key that
      // opened a frame, or is opening one now, keeps its window: dropped, it would take
      // those frames' places in the window with it, and their replays would open.
      if (!entry.opened && entry.opening === 1 && this.#kids.get(held.epoch)?.get(kid) === entry) {
        this.#receiver.removeKey(kid);
        installed.delete(kid);
      }
      return this.#drop("tampered");
    } finally {
      entry.opening -= 1;
    }
  }

  /** Derive and hold the receiving key of `kid`; frames that come meanwhile wait for it. */
  #install(
    installed: Map<bigint, Installed>,
    held: { epoch: bigint; key: Uint8Array },
    kid: bigint,
    source: { sender: bigint; stream: number },
  ): Installed {
    const entry: Installed = { ready: undefined, opening: 0, opened: false };
    entry.ready = senderBaseKey(held.key, this.meetingId, held.epoch, source.sender, source.stream)
      .then(async (base) => {
        // The epoch's keys were dropped (or replaced) while this one was derived.
        if (this.#kids.get(held.epoch)?.get(kid) !== entry) throw new UnknownKeyId("the epoch's keys were dropped");
        await this.#receiver.addKey(kid, base, this.#suite);
      })
      .then(() => {
        entry.ready = undefined; // later frames go straight to the receiver
      });
    installed.set(kid, entry);
    return entry;
  }

  countWaitedOut(): void {
    this.counters.unknown_epoch += 1;
  }

  /** The SFrame metadata: the meeting id, then the codec's clear bytes. One buffer serves
   * every frame: SFrame reads the metadata when called, before it awaits anything. */
  #metadata(clear: Uint8Array): Uint8Array {
    if (clear.length === 0) return this.#meeting;
    const size = this.#meeting.length + clear.length;
    if (this.#withClear.length < size) {
      this.#withClear = new Uint8Array(size);
      this.#withClear.set(this.#meeting);
    }
    this.#withClear.set(clear, this.#meeting.length);
    return this.#withClear.subarray(0, size);
  }

  #drop(reason: DropReason): Opened {
    this.counters[reason] += 1;
    return { kind: "drop", reason };
  }

  #dropKids(epoch: bigint): void {
    for (const kid of this.#kids.get(epoch)?.keys() ?? []) this.#receiver.removeKey(kid);
    this.#kids.delete(epoch);
  }

  toJSON(): string {
    return `FrameCipher(sender=${this.sender}, epochs=${this.epochs.epochs.join(",")})`;
  }
}
