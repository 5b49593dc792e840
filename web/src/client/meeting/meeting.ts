/**
 * `Meeting`: one device's part in a meeting, over the key service and the board, as
 * `veil.client.meeting.meeting` (the Python SDK decides where behaviour is unclear).
 *
 * - **Start** (`Meeting.start`): the first user creates the meeting group (id = the
 *   meeting id; the creator is its admin and a member), adds the invitees who already
 *   have keys, makes the named host an admin (now, or when the host first joins), draws
 *   the epoch-0 key, encrypts it once to the group and posts it.
 * - **Invitation** (`meeting.invitation`): the meeting id and the group's public key,
 *   passed to joiners by the platform.
 * - **Join** (`Meeting.join`): announce on the board; the manager admits invitees by
 *   adding them to the group; the joiner asks the key service to transform the newest
 *   key post, retrying after 1, 5, 10 and 10 s, then is admitted or gets `NotAdmitted`.
 * - **Leave, rekey, ratchet, fail-over**: `manager.ts`.
 * - **End**: the manager posts `end` and deletes the group; every client drops its keys.
 *
 * Media is the browser media layer's: it reads `senderNumber`, `mediaKeys(epoch)` (the
 * epoch's session key, for the SFrame key schedule), the `roster` (sender number ->
 * device) and `EpochChanged` events.
 *
 * The board is read in order and each post handed to the rule that owns it (`roster`,
 * `epochs`, `chat`, the manager); work that waits on a service runs in tasks of its
 * own, so the board is never held up.
 */

import { toHex } from "../../crypto/encoding.js";
import { VeilCryptoError } from "../../crypto/errors.js";
import { EncryptedValue, type Plaintext, type PublicKey } from "../../crypto/pre.js";
import { SENDER_LIMIT } from "../../crypto/schedule.js";
import { Alive, Announce, Chat, End, HandOver, KeyPost, Leave, type MeetingProof, parse } from "../../protocol/board.js";
import { sortedByCodePoint } from "../../protocol/members.js";
import type { Post } from "../board.js";
import type { Device } from "../device.js";
import type { EncryptedDocument } from "../documents.js";
import {
  InvalidRequest,
  MeetingEnded,
  MembersChanging,
  NotAdmitted,
  NotMember,
  ServiceError,
  Unavailable,
  UntrustedInvitation,
  UntrustedPost,
  VeilError,
} from "../errors.js";
import { Invitation } from "../invitation.js";
import { RETRY } from "../retry.js";
import { checkProof, makeProof } from "./authority.js";
import { Ahead, type ChatMessage, openChat, seal } from "./chat.js";
import { Epochs } from "./epochs.js";
import {
  ChatReceived,
  ConnectionChanged,
  Ended,
  EpochChanged,
  EventStream,
  ManagementChanged,
  ParticipantJoined,
  ParticipantLeft,
  Removed,
} from "./events.js";
import { type Admit, Manager } from "./manager.js";
import { MemberLists } from "./members.js";
import { Roster } from "./roster.js";
import { Cancelled, Deferred, Scope, Signal, withTimeout } from "./tasks.js";
import { type Clock, MeetingTimers, systemClock } from "./timers.js";

export interface MeetingOptions {
  admit?: Admit;
  timers?: MeetingTimers;
  clock?: Clock;
}

export interface StartOptions extends MeetingOptions {
  meetingId?: string;
  invitees?: readonly string[];
  /** The user who manages the meeting once present (default: the starter). */
  host?: string;
}

interface Offer {
  post: Post;
  message: KeyPost;
}

interface Own {
  plaintext: Plaintext;
  members: readonly string[];
}

/** Each join draws its own sender number (44 random bits) and announces it, signed: the
 * board's sequence numbers are the service's and must not pick SFrame keys, or a
 * dishonest service could make two senders share a key and nonces. */
function drawSender(): bigint {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  let n = 0n;
  for (const byte of bytes) n = (n << 8n) | BigInt(byte);
  return n % SENDER_LIMIT; // 2^64 is a multiple of 2^44: uniform
}

export class Meeting {
  /** What joiners need (`toString()` is the text form); the group key in it is what
   * every proof on this meeting's board is checked against. */
  readonly invitation: Invitation;
  readonly events = new EventStream();
  readonly roster = new Roster();
  readonly epochs: Epochs;
  readonly memberLists: MemberLists;
  /** This join's sender number (its SFrame KIDs carry it). */
  readonly sender: bigint;
  readonly board: ReturnType<Device["board"]>;
  readonly manager: Manager;
  readonly #chat: ChatMessage[] = [];
  readonly #chatAhead = new Ahead(); // chat of an epoch whose key is on its way
  rekeys = 0;
  ended = false;
  left = false;
  removed = false;
  #admitted = false;
  #offer: Offer | null = null; // the newest key post not taken yet
  readonly #offered = new Signal();
  // Key posts this device made, by encrypted key, until the board delivers them (an ack
  // may be lost while the post landed), and whoever waits for each.
  readonly #own = new Map<string, Own>();
  readonly #landed = new Map<string, Deferred<boolean>>();
  #installed = new Signal(); // pulsed at each install and at the end
  readonly #scope: Scope;
  #retake = false; // a late host or hand-over target retries a lost take-over once
  #namedDeputy: bigint | null = null; // as the manager's newest `alive` says
  #leaveLanded = false;
  readonly #keysDropped = new Set<() => void>();

  private constructor(
    readonly device: Device,
    readonly meetingId: string,
    groupKey: PublicKey,
    readonly timers: MeetingTimers,
    readonly clock: Clock,
    admit: Admit | null,
    invitees: readonly string[],
    host: string | null,
  ) {
    this.invitation = new Invitation(meetingId, groupKey);
    this.epochs = new Epochs(meetingId);
    this.memberLists = new MemberLists(async () => (await device.groups.get(meetingId)).members, device.userId);
    this.sender = drawSender();
    this.#scope = new Scope((error) => this.events.fail(error));
    this.board = device.board(meetingId, { onState: (state) => this.#boardState(state) });
    this.manager = new Manager({
      groups: device.groups,
      signer: () => device.signer,
      userId: device.userId,
      deviceId: device.deviceId,
      wallClock: device.clock,
      meetingId,
      groupKey,
      board: this.board,
      roster: this.roster,
      epochs: this.epochs,
      timers,
      clock,
      events: this.events,
      invitees,
      host,
      admit,
      ownKey: (encrypted, plaintext, members) => this.#ownKey(encrypted, plaintext, members),
    });
  }

  toJSON(): Record<string, string | null> {
    return { meetingId: this.meetingId, epoch: this.epoch?.toString() ?? null, sender: this.sender.toString() };
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return `Meeting(${JSON.stringify(this.meetingId)}, epoch=${this.epoch}, sender=${this.sender})`;
  }

  // --- what the application reads ------------------------------------------------------------

  get epoch(): bigint | null {
    return this.epochs.epoch;
  }

  get members(): readonly string[] {
    return this.epochs.members;
  }

  get securityCode(): string {
    return this.epochs.securityCode;
  }

  get managing(): boolean {
    return this.manager.managing;
  }

  get host(): string | null {
    return this.manager.host;
  }

  /** This join's sender number, for the media layer's SFrame keys and KIDs. */
  get senderNumber(): bigint {
    return this.sender;
  }

  /** Sender number -> user id of everyone present (this device included). */
  get participants(): Map<bigint, string> {
    return new Map(this.roster.participants().map((p) => [p.sender, p.userId]));
  }

  /** The chat messages read so far (this device's own included), in board order. */
  get chat(): readonly ChatMessage[] {
    return [...this.#chat];
  }

  /** The newest failures, also sent as `MeetingFailure` events. */
  get errors(): unknown[] {
    return [...this.events.failures];
  }

  /** Epochs and sender numbers are bigints; a number (plain JavaScript's) is taken too,
   * where a Map lookup by it would find nothing and say no key is held. */

  /** A copy of the session key of `epoch` (the media layer derives its SFrame keys from
   * it with `crypto/schedule`), or `null` unless this client holds that epoch: the
   * current one and the previous one until the next install; none after a leave, a
   * removal or the end. */
  mediaKeys(epoch: bigint | number): Uint8Array<ArrayBuffer> | null {
    return this.epochs.key(BigInt(epoch));
  }

  /** Calls `listener` each time this client drops every key it holds: its own leave,
   * end or close, a removal, or the meeting's end (the media layer forgets its keys then;
   * a device's own leave and end emit no event). Returns an unsubscribe function. */
  onKeysDropped(listener: () => void): () => void {
    this.#keysDropped.add(listener);
    return () => this.#keysDropped.delete(listener);
  }

  /** Keys and encrypted keys this client still holds (zero after a leave or the end). */
  ciphertextsHeld(): number {
    return this.epochs.held() + (this.#offer !== null ? 1 : 0) + this.#own.size;
  }

  // --- start and join --------------------------------------------------------------------------

  /** Start a meeting as its first user (and manager until a late host takes over). Send
   * `meeting.invitation` to the people who will join. */
  static async start(device: Device, o: StartOptions = {}): Promise<Meeting> {
    // `||`, not `??`: an empty id or host is none given, as Python's `or` reads it.
    const meetingId = o.meetingId || `meeting-${toHex(crypto.getRandomValues(new Uint8Array(12)))}`;
    const host = o.host || device.userId;
    const invited = sortedByCodePoint(new Set([...(o.invitees ?? []), host]));
    const known = new Set((await device.session.publicKeys(invited)).keys());
    const members = sortedByCodePoint(new Set([...known, device.userId]));
    await device.groups.create(meetingId, { members });
    const groupKey = (await device.groups.key(meetingId)).publicKey;
    const meeting = new Meeting(device, meetingId, groupKey, o.timers ?? new MeetingTimers(), o.clock ?? systemClock, o.admit ?? null, invited, host);
    try {
      if (host !== device.userId && known.has(host)) await device.groups.ensureAdmin(meetingId, host);
      meeting.#admitted = true;
      await meeting.#open();
      await meeting.manager.rekey();
    } catch (error) {
      await meeting.close({ rotateDeviceKeys: false });
      throw error;
    }
    meeting.#run();
    return meeting;
  }

  /** Announce, wait to be admitted, and fetch the key; `NotAdmitted` otherwise. The
   * invitation is the starter's `meeting.invitation` (or its text form). */
  static async join(device: Device, invitation: Invitation | string, o: MeetingOptions = {}): Promise<Meeting> {
    const parsed = typeof invitation === "string" ? Invitation.parse(invitation) : invitation;
    // The key travelled through the platform; the key service must hold the same one,
    // so neither alone can hand this device a group key of its own. (Re-pinned as
    // served: a meeting id may be reused by a later meeting.)
    const served = await device.groups.publicKey(parsed.meetingId, { acceptChanges: true });
    if (!served.equals(parsed.groupKey)) {
      throw new UntrustedInvitation("the invitation's group key is not the one the key service holds");
    }
    const meeting = new Meeting(device, parsed.meetingId, parsed.groupKey, o.timers ?? new MeetingTimers(), o.clock ?? systemClock, o.admit ?? null, [], null);
    try {
      await meeting.#open();
      await meeting.#waitForAdmission();
      if (meeting.host === device.userId && !meeting.managing) await meeting.#takeOver();
    } catch (error) {
      await meeting.close({ rotateDeviceKeys: false });
      throw error;
    }
    meeting.#run();
    return meeting;
  }

  async #open(): Promise<void> {
    this.device.openMeetings.add(this);
    await this.board.connect(0);
    void this.#scope.spawn(() => this.#boardLoop());
    await this.board.post(Announce.KIND, new Announce(this.sender).bytes(), { timeout: this.timers.postTimeout });
  }

  #run(): void {
    void this.#scope.spawn(() => this.#keyLoop());
    this.manager.start();
  }

  async #waitForAdmission(): Promise<void> {
    for (const delay of [0, ...this.timers.joinRetries]) {
      await this.clock.sleep(delay, this.#scope.signal);
      if (this.ended) throw new MeetingEnded("the meeting ended before this device was admitted");
      while (this.#offer !== null) {
        const offer = this.#offer;
        let opened: [Plaintext, readonly string[]];
        try {
          opened = await this.#openKey(offer);
        } catch (error) {
          if (error instanceof NotMember || error instanceof MembersChanging) break; // not yet: after the wait
          if (error instanceof UntrustedPost || error instanceof InvalidRequest || error instanceof VeilCryptoError) {
            // Anyone may post on the board: a post not to be trusted is set aside, so it
            // cannot keep this device out.
            this.events.fail(error);
            if (this.#offer === offer) this.#offer = null;
            continue;
          }
          throw error;
        }
        this.#admitted = true;
        if (this.#offer === offer) this.#offer = null;
        await this.#take(offer.post, offer.message, ...opened);
        return;
      }
    }
    throw new NotAdmitted(`not admitted to ${JSON.stringify(this.meetingId)}`);
  }

  // --- the board ---------------------------------------------------------------------------

  #boardState(state: string): void {
    this.manager.boardConnected = state === "connected";
    this.events.emit(new ConnectionChanged("board", state));
  }

  async #boardLoop(): Promise<void> {
    while (!this.ended) {
      let post: Post;
      try {
        post = await this.board.next();
      } catch (error) {
        // Refused for good (revoked, the room ended), or closed by `close()`.
        if (error instanceof ServiceError) this.events.fail(error);
        return;
      }
      try {
        await this.#handle(post);
      } catch (error) {
        this.events.fail(error); // one post, refused or not understood: the next one
      }
    }
  }

  /** One post, in board order. Nothing here waits on a service. */
  async #handle(post: Post): Promise<void> {
    const message = parse(post.kind, post.body);
    if (message instanceof Announce) {
      const joined = this.roster.announce(message.sender, post.userId, post.deviceId, post.seq);
      this.events.emit(new ParticipantJoined(joined.sender, joined.userId, joined.deviceId));
      if (joined.deviceId !== this.device.deviceId) this.manager.announced(joined.userId);
    } else if (message instanceof Leave) {
      const gone = this.roster.leave(message.sender, post.deviceId);
      if (gone !== null) {
        this.events.emit(new ParticipantLeft(gone.sender, gone.userId, gone.deviceId));
        if (gone.deviceId !== this.device.deviceId) this.manager.left(gone.userId);
      }
    } else if (message instanceof KeyPost) {
      await this.#offerKey(post, message);
    } else if (message instanceof Chat) {
      await this.#receiveChat(post, message);
    } else if (message instanceof Alive) {
      if (post.deviceId === this.epochs.manager && message.epoch === this.epochs.epoch) {
        this.manager.managerSeen(message.deputy, { alive: true });
        if (message.deputy !== this.#namedDeputy) {
          this.#namedDeputy = message.deputy;
          this.events.emit(new ManagementChanged(post.deviceId, message.deputy));
        }
      } else if (this.managing && this.manager.deputy === this.roster.senderOf(post.deviceId)) {
        this.manager.deputySeen();
      }
    } else if (message instanceof HandOver) {
      await this.#check(post, message.proof, "hand-over", HandOver.payload(message.sender));
      if (message.sender === this.sender && this.#admitted && !this.left) void this.#scope.spawn(() => this.#takeOver());
    } else if (message instanceof End) {
      if (post.deviceId !== this.device.deviceId) await this.#check(post, message.proof, "end");
      this.manager.active = false;
      this.#closeKeys();
      this.#end();
      this.events.emit(new Ended());
    }
  }

  #check(post: Post, proof: MeetingProof, action: string, payload: Uint8Array = new Uint8Array()): Promise<void> {
    return checkProof(proof, { action, meetingId: this.meetingId, poster: post.userId, groupKey: this.invitation.groupKey, payload });
  }

  #end(): void {
    this.ended = true;
    this.#pulse();
  }

  #pulse(): void {
    const installed = this.#installed;
    this.#installed = new Signal();
    installed.set();
  }

  // --- keys ----------------------------------------------------------------------------------

  async #offerKey(post: Post, message: KeyPost): Promise<void> {
    const id = toHex(message.encryptedKey);
    const own = this.#own.get(id);
    if (post.deviceId === this.device.deviceId && own !== undefined) {
      this.#own.delete(id);
      const taken = await this.#take(post, message, own.plaintext, own.members);
      const landed = this.#landed.get(id);
      this.#landed.delete(id);
      landed?.resolve(taken);
      return;
    }
    // Checked before any transform is asked for: a forged key post costs nothing.
    await this.#check(post, message.proof, "key", message.encryptedKey);
    await this.memberLists.follow(message);
    if (post.deviceId === this.epochs.manager) this.manager.managerSeen();
    if (!this.epochs.supersedes(message.epoch, post.seq)) return;
    if (this.#offer === null || supersedesOffer(message.epoch, post.seq, this.#offer)) {
      this.#offer = { post, message };
      this.#offered.set();
    }
  }

  /** A key post this device is about to make: taken when the board delivers it back, in
   * order, like everyone else's (so every client keeps the same key). */
  async #ownKey(encrypted: Uint8Array, plaintext: Plaintext, members: readonly string[]): Promise<Deferred<boolean>> {
    const landed = new Deferred<boolean>();
    if (this.left || this.ended) {
      landed.resolve(false);
      return landed;
    }
    // Held before the wait below, so a leave, removal or close meanwhile drops it with
    // every other key (`#closeKeys`) and the manager sees `landed` settled: nothing posts.
    const id = toHex(encrypted);
    this.#own.set(id, { plaintext, members });
    this.#landed.set(id, landed);
    await this.memberLists.remember(members);
    return landed;
  }

  /** Transform and decrypt a key post; its key and member list. `NotMember` if not (or
   * no longer) in the group; `UntrustedPost` if its ciphertext is not its poster's;
   * `MembersChanging` while its member list cannot be had. */
  async #openKey({ post, message }: Offer): Promise<[Plaintext, readonly string[]]> {
    const origin = await EncryptedValue.fromBytes(message.encryptedKey).verify();
    const [, signer] = await this.device.signerOf(post.deviceId);
    if (!origin.signer.equals(signer)) throw new UntrustedPost("the key was not encrypted by its poster");
    const transformed = await this.device.session.transform(origin.bytes(), this.meetingId);
    const plaintext = await this.device.decrypt(transformed, { origin });
    return [plaintext, await this.memberLists.of(message)];
  }

  /** Takes the newest key post offered, one at a time, retrying while the key service
   * does not answer. */
  async #keyLoop(): Promise<void> {
    const signal = this.#scope.signal;
    let failures = 0;
    for (;;) {
      await this.#offered.wait(signal);
      this.#offered.clear();
      const offer = this.#offer;
      if (offer === null) continue;
      let opened: [Plaintext, readonly string[]];
      try {
        opened = await this.#openKey(offer);
      } catch (error) {
        if (error instanceof Cancelled) throw error;
        if (error instanceof NotMember) {
          this.#removed();
          return;
        }
        this.events.fail(error);
        if (error instanceof Unavailable || error instanceof MembersChanging) {
          await this.clock.sleep(RETRY.delay(failures), signal);
          failures += 1;
          this.#offered.set();
        } else if (this.#offer === offer) {
          this.#offer = null; // refused or not to be trusted: set aside
        }
        continue;
      }
      failures = 0;
      if (this.#offer === offer) this.#offer = null;
      await this.#take(offer.post, offer.message, ...opened);
    }
  }

  /** Install a key post's key if it supersedes the one held (and this client is still
   * in the meeting); whether it did. */
  async #take(post: Post, message: KeyPost, plaintext: Plaintext, members: readonly string[]): Promise<boolean> {
    if (this.left || this.removed || this.ended) return false;
    const installed = await this.epochs.install(message.epoch, post.seq, plaintext, members, post.deviceId);
    if (installed === null) return false;
    this.manager.host = message.host;
    for (const userId of message.invitees) this.manager.invitees.add(userId);
    this.manager.managerSeen();
    this.manager.lastRekey = this.clock.time();
    if (installed.before !== null && installed.epoch > installed.before) this.rekeys += 1;
    this.events.emit(new EpochChanged(installed.epoch, installed.members, installed.securityCode, installed.manager));
    for (const [waiting, chat] of this.#chatAhead.due(installed.epoch)) await this.#readChat(waiting, chat);
    this.#pulse();
    const mine = installed.manager === this.device.deviceId;
    if (mine && installed.previousManager !== installed.manager) this.manager.becameManager();
    if (this.#retake && !mine) {
      this.#retake = false; // lost the take-over to a racing rekey: once more
      void this.#scope.spawn(() => this.manager.takeOver());
    } else if (mine) {
      this.#retake = false;
    }
    return true;
  }

  /** A late host, or the participant management was handed to: manage from the next
   * epoch on. If a racing rekey by another admin lands first, once more. */
  #takeOver(): Promise<void> {
    this.#retake = true;
    return this.manager.takeOver();
  }

  /** Resolves once this client holds `epoch` (or a later one) or the meeting ended;
   * `Unavailable` "timeout" after `timeout` seconds. */
  async waitForEpoch(epoch: bigint | number, timeout = 30): Promise<void> {
    epoch = BigInt(epoch);
    const reached = async (): Promise<void> => {
      while ((this.epoch ?? 0n) < epoch && !this.ended) await this.#installed.wait();
    };
    await withTimeout(reached(), timeout, () => new Unavailable(0, "timeout", `epoch ${epoch} not reached within ${timeout} s`));
  }

  #removed(): void {
    this.removed = true;
    this.#closeKeys();
    this.events.emit(new Removed());
  }

  #closeKeys(): void {
    this.epochs.close();
    this.#chatAhead.clear();
    this.#offer = null;
    for (const landed of this.#landed.values()) landed.resolve(false);
    this.#own.clear();
    this.#landed.clear();
    for (const listener of [...this.#keysDropped]) {
      try {
        listener();
      } catch (error) {
        this.events.fail(error); // the application's bug must not stop the meeting
      }
    }
  }

  // --- management ------------------------------------------------------------------------------

  /** For the manager: rotate the key now (after revoking a participant's device, say:
   * the revoked device cannot get the new key). */
  async rekey(): Promise<void> {
    if (!this.managing || this.left || this.ended) throw new VeilError("only the meeting's manager rekeys, while it is in the meeting");
    await this.manager.rekey();
  }

  /** For the manager: pass management to the participant that joined as `sender` (its
   * user becomes an admin); it rotates the key and manages from then on. A manager
   * hands over before it leaves. */
  async handOver(sender: bigint | number): Promise<void> {
    sender = BigInt(sender); // a number from plain JavaScript names the same join
    if (!this.managing) throw new VeilError("only the meeting's manager hands management over");
    const participant = this.roster.get(sender);
    if (participant === null || sender === this.sender) throw new VeilError(`no other participant joined as sender ${sender}`);
    const group = await this.device.groups.get(this.meetingId);
    if (!group.admins.includes(participant.userId)) await this.device.groups.ensureAdmin(this.meetingId, participant.userId);
    const proof = await this.#proof("hand-over", HandOver.payload(sender));
    await this.board.post(HandOver.KIND, new HandOver(sender, proof).bytes(), { timeout: this.timers.postTimeout });
  }

  #proof(action: string, payload: Uint8Array = new Uint8Array()): Promise<MeetingProof> {
    const now = BigInt(Math.trunc(this.device.clock()));
    return makeProof(this.device.groups, this.meetingId, this.invitation.groupKey, this.device.userId, now, action, payload);
  }

  // --- chat --------------------------------------------------------------------------------------

  async sendChat(text: string): Promise<void> {
    const epoch = this.epochs.epoch;
    const key = epoch === null ? null : this.epochs.key(epoch);
    if (epoch === null || key === null) throw new MeetingEnded("no session key (ended, left, or not admitted)");
    const message = await seal(key, text, { meetingId: this.meetingId, epoch, sender: this.sender });
    await this.board.post(Chat.KIND, message.bytes(), { timeout: this.timers.postTimeout });
  }

  async #receiveChat(post: Post, message: Chat): Promise<void> {
    if (this.roster.senderOf(post.deviceId) !== message.sender) {
      throw new UntrustedPost("a chat message under another device's sender number");
    }
    await this.#readChat(post, message);
  }

  async #readChat(post: Post, message: Chat): Promise<void> {
    const key = this.epochs.key(message.epoch);
    if (key === null) {
      const held = this.epochs.epoch;
      if (!this.epochs.closed && (held === null || message.epoch > held)) this.#chatAhead.hold(post, message); // its key is on its way
      return; // otherwise an epoch this client does not hold (before it joined)
    }
    const opened = await openChat(key, message, { meetingId: this.meetingId, userId: post.userId });
    if (opened !== null) {
      this.#chat.push(opened);
      this.events.emit(new ChatReceived(opened.userId, opened.sender, opened.epoch, opened.text));
    }
  }

  /** The chat so far as a durable transcript, encrypted to `users`/`groups`. */
  saveTranscript({ users = [], groups = [] }: { users?: string[]; groups?: string[] } = {}): Promise<EncryptedDocument> {
    const lines = this.#chat.map((m) => `${m.userId}: ${m.text}`);
    return this.device.documents.saveTranscript(new TextEncoder().encode(lines.join("\n")), { users, groups });
  }

  // --- leave and end ----------------------------------------------------------------------------

  /** Drop this meeting's keys, then post a leave notice (retried until it lands). From
   * the moment this is called the client installs no key, so once it returns it holds
   * none and decrypts nothing new. The board stays open, so an application may keep
   * watching. The manager first ends the meeting or hands it over. */
  async leave(): Promise<void> {
    if (this.managing && !this.ended) throw new VeilError("the manager ends the meeting or hands it over before leaving");
    if (!this.left) {
      this.left = true;
      this.manager.active = false; // a take-over in flight draws and posts nothing more
      this.#closeKeys();
      await this.manager.stop();
    }
    if (!this.#leaveLanded) {
      // a call after a failed one posts again
      await this.#postUntilLanded(Leave.KIND, new Leave(this.sender).bytes());
      this.#leaveLanded = true;
    }
  }

  /** Post, trying again after a refusal the board may not repeat (503: it could not ask
   * the key service) until `postTimeout` has passed; then throw. */
  async #postUntilLanded(kind: string, body: Uint8Array): Promise<void> {
    const deadline = this.clock.time() + this.timers.postTimeout;
    for (let failures = 0; ; failures++) {
      try {
        await this.board.post(kind, body, { timeout: this.timers.postTimeout });
        return;
      } catch (error) {
        if (!(error instanceof Unavailable) || this.clock.time() >= deadline) throw error;
        this.events.fail(error);
        await this.clock.sleep(RETRY.delay(failures));
      }
    }
  }

  /** For the manager: end the meeting, delete the group (its transform keys go). */
  async end(): Promise<void> {
    if (!this.managing) throw new VeilError("only the meeting's manager (the newest key's poster) ends it");
    const proof = await this.#proof("end");
    await this.board.post(End.KIND, new End(proof).bytes(), { timeout: this.timers.postTimeout });
    await this.device.groups.delete(this.meetingId);
    this.manager.active = false;
    this.#closeKeys();
    this.#end();
  }

  /** Stop following the meeting and drop its keys; then, by default, rotate this
   * device's keys (a later theft of the device opens nothing from this meeting), once no
   * other meeting of the device is open. A failed rotation throws, after the rest is
   * released, so the application knows forward secrecy was not reached. */
  async close({ rotateDeviceKeys = true }: { rotateDeviceKeys?: boolean } = {}): Promise<void> {
    await this.manager.stop();
    const stopping = this.#scope.stop();
    await this.board.close();
    await stopping;
    this.#closeKeys();
    this.device.openMeetings.delete(this);
    // With another meeting of this device still open, its sockets speak with the
    // current keys: the rotation waits for the last meeting to close.
    if (rotateDeviceKeys && this.device.openMeetings.size === 0) await this.device.rotateKeys();
  }
}

function supersedesOffer(epoch: bigint, seq: number, offer: Offer): boolean {
  return epoch > offer.message.epoch || (epoch === offer.message.epoch && seq < offer.post.seq);
}
