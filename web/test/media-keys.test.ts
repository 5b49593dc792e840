/** `meetingKeySource`: a Meeting's epochs and key drops, as the media layer's key source. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { Plaintext } from "../src/crypto/pre.js";
import { Epochs } from "../src/client/meeting/epochs.js";
import { EpochChanged, EventStream, ParticipantJoined } from "../src/client/meeting/events.js";
import { type MeetingKeys, meetingKeySource } from "../src/client/meeting/media-keys.js";
import type { Meeting } from "../src/client/meeting/meeting.js";

// The real class is what pages pass: it must fit the adapter's view of it.
const fits: (meeting: Meeting) => MeetingKeys = (meeting) => meeting;
void fits;

/** The parts of a Meeting the adapter reads, driven by the Meeting's own Epochs and
 * EventStream (install emits `EpochChanged` as `Meeting.#take` does; drop as `#closeKeys`). */
class KeysOnly implements MeetingKeys {
  readonly meetingId = "m-1";
  readonly senderNumber = 0xabcdef123n;
  readonly epochs = new Epochs("m-1");
  readonly events = new EventStream();
  readonly #dropped = new Set<() => void>();
  #seq = 0;

  get epoch(): bigint | null {
    return this.epochs.epoch;
  }
  mediaKeys(epoch: bigint): Uint8Array | null {
    const key = this.epochs.key(epoch);
    return key === null ? null : Uint8Array.from(key);
  }
  onKeysDropped(listener: () => void): () => void {
    this.#dropped.add(listener);
    return () => this.#dropped.delete(listener);
  }
  async install(epoch: bigint): Promise<void> {
    const installed = await this.epochs.install(epoch, ++this.#seq, Plaintext.generate(), ["ann"], "dev-a");
    assert.ok(installed);
    this.events.emit(new EpochChanged(installed.epoch, installed.members, installed.securityCode, installed.manager));
  }
  drop(): void {
    this.epochs.close();
    for (const listener of this.#dropped) listener();
  }
}

test("the source names the meeting and this join's sender number", () => {
  const meeting = new KeysOnly();
  const source = meetingKeySource(meeting);
  assert.equal(source.meetingId, "m-1");
  assert.equal(source.sender, 0xabcdef123n);
});

test("a listener gets the epoch held now, then each new epoch's session key, as the meeting holds it", async () => {
  const meeting = new KeysOnly();
  await meeting.install(0n);
  const got: [bigint, Uint8Array][] = [];
  const off = meetingKeySource(meeting).onSessionKey((epoch, key) => got.push([epoch, key]));
  assert.deepEqual(got.map(([e]) => e), [0n]);
  meeting.events.emit(new ParticipantJoined(5n, "bob", "dev-b")); // other events pass by
  await meeting.install(1n);
  await meeting.install(2n);
  assert.deepEqual(got.map(([e]) => e), [0n, 1n, 2n]);
  assert.deepEqual(got[1]?.[1], meeting.mediaKeys(1n)); // the previous epoch is still held
  assert.equal(got[2]?.[1].length, 32);
  assert.deepEqual(got[2]?.[1], meeting.mediaKeys(2n));
  // each is a copy: the media layer zeroes what it is given, the meeting's key stays
  got[2]?.[1].fill(0);
  assert.notDeepEqual(meeting.mediaKeys(2n), new Uint8Array(32));
  off();
  await meeting.install(3n);
  assert.equal(got.length, 3);
});

test("before the first key nothing is handed over; a key dropped before the event is not handed over", async () => {
  const meeting = new KeysOnly();
  const got: bigint[] = [];
  meetingKeySource(meeting).onSessionKey((epoch) => got.push(epoch));
  assert.deepEqual(got, []);
  meeting.events.emit(new EpochChanged(4n, ["ann"], "code", "dev-a")); // a key no longer held
  assert.deepEqual(got, []);
});

test("onLeave fires when the meeting drops its keys, until unsubscribed", async () => {
  const meeting = new KeysOnly();
  await meeting.install(0n);
  const source = meetingKeySource(meeting);
  let left = 0;
  const off = source.onLeave(() => left++);
  meeting.drop();
  assert.equal(left, 1);
  assert.equal(meeting.mediaKeys(0n), null);
  off();
  meeting.drop();
  assert.equal(left, 1);
});
