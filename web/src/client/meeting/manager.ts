/**
 * The manager role, as `veil.client.meeting.manager`: who is admitted, who is removed,
 * when the key rotates, and who takes over when the manager stops.
 *
 * The device that posted the key held manages (`epochs`). Its work runs in tasks of
 * their own, so no kind of post can hold up another:
 *
 * - **removals**: a leave takes its user out of the meeting group at once (unless
 *   another device of the user is still present), then a rekey follows `debounce`
 *   seconds later, covering the leaves of that window. A removal the key service
 *   refused is retried; every rekey, and every change of manager, first removes every
 *   user who left and has no device present, so no leave is lost;
 * - **admissions**: an announce by an invitee (or by a user `admit` approves) adds the
 *   user to the group; an uninvited announce costs a set lookup, not a request;
 * - **heartbeat**: every `heartbeat` seconds an `alive` post names the deputy, the
 *   earliest-joined other participant whose user is a member, made an admin first (so
 *   it can get the group key a take-over needs). The deputy answers with `alive` posts
 *   of its own; a deputy silent for `failover` seconds is replaced;
 * - **ratchet**: a rekey when `rekeyInterval` passes without one.
 *
 * A deputy that sees neither a key post nor an `alive` from the manager for `failover`
 * seconds, while its own board connection is up, takes over: it removes every user who
 * left and has no device present, then rekeys. Every loop reports what fails
 * (`MeetingFailure`) and goes on.
 */

import { bytesEqual } from "../../crypto/encoding.js";
import { Plaintext, type PublicKey, encrypt } from "../../crypto/pre.js";
import type { SigningKey } from "../../crypto/signing.js";
import { Alive, KeyPost } from "../../protocol/board.js";
import { memberDigest, sortedByCodePoint } from "../../protocol/members.js";
import type { Board } from "../board.js";
import { Unavailable } from "../errors.js";
import type { Groups } from "../groups.js";
import { RETRY } from "../retry.js";
import { makeProof } from "./authority.js";
import type { Epochs } from "./epochs.js";
import type { EventStream } from "./events.js";
import type { Roster } from "./roster.js";
import { Cancelled, type Deferred, Lock, Queue, Scope, Signal, withTimeout } from "./tasks.js";
import type { Clock, MeetingTimers } from "./timers.js";

/** Asked by the manager when someone not invited knocks: admit this user? */
export type Admit = (userId: string) => Promise<boolean>;

/** Tells the meeting of a key post this device is about to make (its encrypted key and
 * plaintext), before it is posted; resolves once the board delivers it back: installed
 * (true) or superseded by an earlier post (false). */
export type OwnKey = (encrypted: Uint8Array, plaintext: Plaintext, members: readonly string[]) => Promise<Deferred<boolean>>;

export interface ManagerOptions {
  groups: Groups;
  signer: () => SigningKey;
  userId: string;
  deviceId: string;
  wallClock: () => number;
  meetingId: string;
  groupKey: PublicKey;
  board: Board;
  roster: Roster;
  epochs: Epochs;
  timers: MeetingTimers;
  clock: Clock;
  events: EventStream;
  invitees: Iterable<string>;
  host: string | null;
  admit: Admit | null;
  ownKey: OwnKey;
}

export class Manager {
  readonly userId: string;
  readonly deviceId: string;
  readonly meetingId: string;
  readonly invitees: Set<string>;
  host: string | null;
  /** False once this device left or the meeting ended: it manages nothing more. */
  active = true;
  /** Kept by the meeting from the board's connection state. */
  boardConnected = false;
  /** The deputy named by the newest `alive` of the manager (or by this manager). */
  deputy: bigint | null = null;
  /** When this device last saw the manager's key post or `alive`. */
  lastSign: number;
  lastRekey: number;
  readonly #o: ManagerOptions;
  #deputySeen: number; // as manager: the deputy's last `alive`
  readonly #admissions = new Queue<string>();
  readonly #queued = new Set<string>();
  readonly #departures = new Signal(); // a leave to apply (coalesced)
  #rekeyDue: Promise<void> | null = null;
  readonly #lock = new Lock(); // one rekey at a time
  #members: string[] | null = null; // the group's, as of `#group`
  readonly #silent = new Set<string>(); // devices that stopped answering: no deputies
  readonly #scope: Scope;

  constructor(o: ManagerOptions) {
    this.#o = o;
    this.userId = o.userId;
    this.deviceId = o.deviceId;
    this.meetingId = o.meetingId;
    this.invitees = new Set(o.invitees);
    this.host = o.host;
    this.lastSign = this.lastRekey = this.#deputySeen = o.clock.time();
    this.#scope = new Scope((error) => o.events.fail(error));
  }

  get managing(): boolean {
    return this.active && this.#o.epochs.manager === this.deviceId;
  }

  start(): void {
    for (const work of [this.#admitLoop, this.#removeLoop, this.#heartbeat, this.#ratchet, this.#watchManager]) {
      void this.#scope.spawn(() => work.call(this));
    }
  }

  // --- what the board loop tells the manager (no waiting here) -----------------------------

  announced(userId: string): void {
    if (!this.managing || this.#queued.has(userId)) return;
    // Invitees and, if the application decides, others; anyone else costs nothing.
    if (this.invitees.has(userId) || this.#o.admit !== null) {
      this.#queued.add(userId);
      this.#admissions.put(userId);
    }
  }

  /** Someone left: applied by the manager, at once or when this device manages. */
  left(_userId: string): void {
    this.#departures.set();
  }

  /** This device's key is the one held now: apply what the last manager may not have. */
  becameManager(): void {
    this.#deputySeen = this.#o.clock.time();
    this.#departures.set();
  }

  managerSeen(deputy?: bigint | null, { alive = false } = {}): void {
    this.lastSign = this.#o.clock.time();
    if (alive) this.deputy = deputy ?? null;
  }

  deputySeen(): void {
    this.#deputySeen = this.#o.clock.time();
  }

  // --- the group --------------------------------------------------------------------------

  /** The group's admins and its member list (sorted; this manager's own, kept up to date
   * with its own changes). The key service says only the list's digest: the whole list
   * is read only when someone else changed it. */
  async #group(): Promise<[string[], string[]]> {
    const summary = await this.#o.groups.digest(this.meetingId);
    let held = this.#members ?? [...this.#o.epochs.members];
    if (!bytesEqual(await memberDigest(held), summary.membersDigest)) {
      held = sortedByCodePoint((await this.#o.groups.get(this.meetingId)).members);
    }
    this.#members = held;
    return [summary.admins, held];
  }

  // --- rekeys -----------------------------------------------------------------------------

  /** Apply departures, draw the next epoch's key, encrypt it once to the group, post it;
   * returns once the board delivered it back (installed, or superseded by an earlier
   * post). Nothing is drawn or posted once this device left. */
  rekey(): Promise<void> {
    return this.#lock.run(async () => {
      if (!this.active) return;
      await this.reconcile();
      const o = this.#o;
      const epoch = o.epochs.epoch === null ? 0n : o.epochs.epoch + 1n;
      const [, members] = await this.#group();
      const plaintext = Plaintext.generate();
      const encrypted = (await encrypt(plaintext, o.groupKey, o.signer())).bytes();
      const now = BigInt(Math.trunc(o.wallClock()));
      const proof = await makeProof(o.groups, this.meetingId, o.groupKey, this.userId, now, "key", encrypted);
      const present = new Set(members);
      const invitees = sortedByCodePoint([...this.invitees].filter((u) => !present.has(u)));
      const [membersDigest, baseDigest, joined, left] = await KeyPost.changes(o.epochs.members, members);
      const post = new KeyPost(epoch, encrypted, membersDigest, baseDigest, joined, left, invitees, this.host ?? this.userId, proof);
      if (!this.active) return; // left while the key was being made
      const landed = await o.ownKey(encrypted, plaintext, [...members]);
      if (!this.active || landed.done) return; // left or closed while it was being registered
      let installed: boolean;
      // Both waits end at once when the manager stops (a leave, the end, a close), as the
      // Python tasks' are cancelled: a stop never waits out a post the board leaves unanswered.
      const signal = this.#scope.signal;
      try {
        await o.board.post(KeyPost.KIND, post.bytes(), { timeout: o.timers.postTimeout, signal });
        this.lastRekey = o.clock.time();
        installed = await withTimeout(
          landed.promise,
          o.timers.postTimeout,
          () => new Unavailable(0, "timeout", "the board did not deliver this device's key post back in time"),
          signal,
        );
      } finally {
        landed.resolve(false); // no longer waited for (the post is still taken if it lands)
      }
      // The key is out: an `alive` the board is too busy to take at once (it is fanning the
      // key post out to a large meeting) is the heartbeat's to retry, not a failed rekey.
      if (installed && this.managing) await this.#attempt(this.#postAlive());
    });
  }

  /** Manage from the next epoch: a rekey, which first applies every leave. */
  takeOver(): Promise<void> {
    return this.rekey();
  }

  /** Remove from the group (and from the admins, where the meeting made them one) every
   * user who left and has no device present; the users removed. One who came back
   * meanwhile is admitted again. */
  async reconcile(): Promise<string[]> {
    const o = this.#o;
    const departed = o.roster.departed();
    departed.delete(this.userId);
    if (departed.size === 0) return [];
    const [admins, members] = await this.#group();
    const holds = new Set(members);
    const gone = sortedByCodePoint(departed).filter((u) => holds.has(u));
    if (gone.length) {
      await o.groups.removeMembers(this.meetingId, gone);
      this.#members = members.filter((m) => !departed.has(m));
    }
    const demoted = sortedByCodePoint(admins.filter((u) => departed.has(u) && u !== (this.host ?? "")));
    if (demoted.length) await o.groups.removeAdmins(this.meetingId, demoted);
    o.roster.settled(departed);
    for (const userId of gone) if (o.roster.hasUser(userId)) this.announced(userId); // left and came back
    return gone;
  }

  #rekeySoon(): void {
    if (this.#rekeyDue !== null) return;
    this.#rekeyDue = this.#scope.spawn(async () => {
      try {
        await this.#o.clock.sleep(this.#o.timers.debounce, this.#scope.signal);
        if (this.managing) await this.#attempt(this.rekey());
      } finally {
        this.#rekeyDue = null;
      }
    });
  }

  /** Run one piece of background work; a failure is reported, never thrown. */
  async #attempt(work: Promise<unknown>): Promise<boolean> {
    try {
      await work;
    } catch (error) {
      if (error instanceof Cancelled) throw error;
      this.#o.events.fail(error); // a service's refusal, or the application's callback
      return false;
    }
    return true;
  }

  // --- the background work -----------------------------------------------------------------

  async #removeLoop(): Promise<void> {
    const signal = this.#scope.signal;
    let failures = 0;
    for (;;) {
      await this.#departures.wait(signal);
      this.#departures.clear();
      if (!this.managing) continue; // becameManager() sets it again
      let removed: string[];
      try {
        removed = await this.reconcile();
      } catch (error) {
        if (error instanceof Cancelled) throw error;
        this.#o.events.fail(error); // retried, backing off, until the key service takes it
        await this.#o.clock.sleep(RETRY.delay(failures), signal);
        failures += 1;
        this.#departures.set();
        continue;
      }
      failures = 0;
      if (removed.length) this.#rekeySoon();
    }
  }

  async #admitLoop(): Promise<void> {
    for (;;) {
      const userId = await this.#admissions.get(this.#scope.signal);
      await this.#attempt(this.#consider(userId));
      this.#queued.delete(userId);
    }
  }

  async #consider(userId: string): Promise<void> {
    if (!this.managing) return;
    const o = this.#o;
    const [admins, members] = await this.#group();
    if (members.includes(userId)) return;
    const invited = this.invitees.has(userId) || (o.admit !== null && (await o.admit(userId)));
    if (!invited) return;
    // The host becomes an admin first: once a member it is admitted, and it then takes
    // over at once, which needs the group key.
    if (userId === this.host && !admins.includes(userId)) await o.groups.ensureAdmin(this.meetingId, userId);
    await o.groups.addMembers(this.meetingId, [userId]);
    if (this.#members === members) this.#members = sortedByCodePoint([...members, userId]);
  }

  async #heartbeat(): Promise<void> {
    const o = this.#o;
    for (;;) {
      await o.clock.sleep(o.timers.heartbeat, this.#scope.signal);
      if (this.managing) await this.#attempt(this.#postAlive());
      else if (this.#isDeputy() && o.epochs.epoch !== null) {
        // The deputy answers, so the manager knows it would take over.
        const alive = new Alive(o.epochs.epoch, this.deputy);
        await this.#attempt(o.board.post(Alive.KIND, alive.bytes(), { timeout: o.timers.heartbeat * 2, signal: this.#scope.signal }));
      }
    }
  }

  #isDeputy(): boolean {
    const mine = this.#o.roster.senderOf(this.deviceId);
    return this.active && mine !== null && this.deputy === mine;
  }

  async #postAlive(): Promise<void> {
    const deputy = await this.#chooseDeputy();
    const epoch = this.#o.epochs.epoch;
    if (epoch === null) throw new Error("unreachable: a manager holds an epoch");
    const options = { timeout: this.#o.timers.heartbeat * 2, signal: this.#scope.signal };
    await this.#o.board.post(Alive.KIND, new Alive(epoch, deputy).bytes(), options);
  }

  /** The deputy named so far while it is present and answers; otherwise the earliest-
   * joined participant of another device whose user is a member, made an admin if needed. */
  async #chooseDeputy(): Promise<bigint | null> {
    const o = this.#o;
    const current = this.deputy === null ? null : o.roster.get(this.deputy);
    const silent = o.clock.time() - this.#deputySeen > o.timers.failover;
    if (current !== null && silent) this.#silent.add(current.deviceId);
    const passed = new Set([this.deviceId, ...this.#silent]);
    if (current !== null && !passed.has(current.deviceId)) return current.sender;
    const candidates = o.roster.participants().filter((p) => !passed.has(p.deviceId));
    if (candidates.length === 0) {
      this.deputy = null;
      return null;
    }
    const [admins, members] = await this.#group();
    const deputy = candidates.find((p) => members.includes(p.userId));
    if (deputy === undefined) {
      this.deputy = null;
      return null; // no member yet: no deputy rather than an outsider
    }
    if (!admins.includes(deputy.userId)) await o.groups.ensureAdmin(this.meetingId, deputy.userId);
    this.deputy = deputy.sender;
    this.#deputySeen = o.clock.time();
    return deputy.sender;
  }

  async #ratchet(): Promise<void> {
    const o = this.#o;
    for (;;) {
      const wait = this.lastRekey + o.timers.rekeyInterval - o.clock.time();
      if (wait > 0) {
        await o.clock.sleep(wait, this.#scope.signal);
        continue;
      }
      if (this.managing) await this.#attempt(this.rekey());
      this.lastRekey = o.clock.time();
    }
  }

  /** Fail-over: the deputy takes over once the manager is silent too long. */
  async #watchManager(): Promise<void> {
    const o = this.#o;
    for (;;) {
      await o.clock.sleep(o.timers.heartbeat / 2, this.#scope.signal);
      if (!this.boardConnected) {
        // Silence seen from a broken connection says nothing of the manager.
        this.lastSign = o.clock.time();
        continue;
      }
      const silent = o.clock.time() - this.lastSign;
      if (!this.managing && this.#isDeputy() && silent >= o.timers.failover) {
        this.lastSign = o.clock.time();
        if (o.epochs.manager !== null) this.#silent.add(o.epochs.manager);
        await this.#attempt(this.takeOver());
      }
    }
  }

  async stop(): Promise<void> {
    this.active = false;
    await this.#scope.stop();
  }

  toJSON(): Record<string, unknown> {
    return { meetingId: this.meetingId, managing: this.managing, deputy: this.deputy?.toString() ?? null };
  }
}
