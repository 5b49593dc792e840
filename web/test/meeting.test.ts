/** The meeting's rules without a service: roster, epochs, member lists, events, timers. */

import assert from "node:assert/strict";
import { inspect } from "node:util";
import { test } from "node:test";

import { toHex } from "../src/crypto/encoding.js";
import { Plaintext, PrivateKey } from "../src/crypto/pre.js";
import { sessionKey } from "../src/crypto/schedule.js";
import { Chat, KeyPost, MeetingProof } from "../src/protocol/board.js";
import { Post } from "../src/client/board.js";
import { MembersChanging, UntrustedPost } from "../src/client/errors.js";
import { AHEAD_LIMIT, Ahead, ChatMessage } from "../src/client/meeting/chat.js";
import { Epochs, securityCode } from "../src/client/meeting/epochs.js";
import {
  ChatReceived,
  ConnectionChanged,
  Ended,
  EpochChanged,
  EventStream,
  ManagementChanged,
  type MeetingEvent,
  MeetingFailure,
  ParticipantJoined,
  ParticipantLeft,
  Removed,
} from "../src/client/meeting/events.js";
import { MemberLists } from "../src/client/meeting/members.js";
import { Roster } from "../src/client/meeting/roster.js";
import { Cancelled, withTimeout } from "../src/client/meeting/tasks.js";
import { MeetingTimers, systemClock } from "../src/client/meeting/timers.js";

const groupKey = PrivateKey.generate();

async function keyPost(epoch: bigint, before: string[], after: string[], invitees: string[] = []): Promise<KeyPost> {
  const encrypted = new Uint8Array([1, 2, 3]);
  const proof = await MeetingProof.make("key", "m", "ann", 1n, groupKey, encrypted);
  const [members, base, joined, left] = await KeyPost.changes(before, after);
  return new KeyPost(epoch, encrypted, members, base, joined, left, invitees, "ann", proof);
}

test("the roster keeps each sender number to the device that announced it first", () => {
  const roster = new Roster();
  roster.announce(7n, "ann", "dev-a", 1);
  assert.throws(() => roster.announce(7n, "eve", "dev-e", 2), UntrustedPost);
  roster.announce(9n, "bob", "dev-b", 3);
  roster.announce(11n, "ann", "dev-a", 4); // ann's device joined again: its old join goes
  assert.deepEqual(roster.participants().map((p) => p.sender), [9n, 11n]);
  assert.equal(roster.leave(9n, "dev-e"), null); // a leave for another device's join
  assert.equal(roster.leave(9n, "dev-b")?.userId, "bob");
  assert.deepEqual([...roster.departed()], ["bob"]);
  roster.settled(["bob"]);
  assert.equal(roster.departed().size, 0);
  assert.equal(roster.senderOf("dev-a"), 11n);
});

test("epochs: a newer epoch or the same epoch earlier on the board replaces the key; none after close", async () => {
  const epochs = new Epochs("m");
  const [p0, p1, p1b] = [Plaintext.generate(), Plaintext.generate(), Plaintext.generate()];
  assert.ok(await epochs.install(0n, 10, p0, ["ann"], "dev-a"));
  assert.ok(await epochs.install(1n, 20, p1, ["ann", "bob"], "dev-a"));
  assert.equal(await epochs.install(1n, 30, p1b, ["ann"], "dev-b"), null); // later post of epoch 1
  const raced = await epochs.install(1n, 15, p1b, ["ann", "bob"], "dev-b"); // earlier post of epoch 1
  assert.equal(raced?.manager, "dev-b");
  const key = await sessionKey(p1b, "m", 1n);
  assert.deepEqual(epochs.key(1n), key);
  assert.equal(epochs.securityCode, await securityCode(key, 1n, ["ann", "bob"]));
  assert.ok(epochs.key(0n)); // the previous epoch's key stays for late chat
  await epochs.install(2n, 40, p0, ["ann"], "dev-b");
  assert.deepEqual(epochs.heldEpochs(), [1n, 2n]);
  // No secret in JSON or inspection.
  const shown = JSON.stringify(epochs) + inspect(epochs, { depth: 5 });
  assert.ok(!shown.includes(toHex(key)) && !shown.includes(toHex(epochs.key(2n)!)), shown);
  epochs.close();
  assert.equal(epochs.held(), 0);
  assert.equal(await epochs.install(3n, 50, p0, ["ann"], "dev-b"), null);
});

test("member lists follow key posts in board order", async () => {
  const fetched: string[][] = [];
  const lists = new MemberLists(async () => fetched.shift() ?? [], "cat");
  const first = await keyPost(0n, [], ["ann"]);
  const second = await keyPost(1n, ["ann"], ["ann", "bob"]);
  await lists.follow(first);
  await lists.follow(second);
  assert.deepEqual(await lists.of(second), ["ann", "bob"]); // nothing fetched
});

test("a fetched member list is taken only if its digest is the key post's", async () => {
  const fetched: string[][] = [];
  const lists = new MemberLists(async () => fetched.shift() ?? [], "cat");
  // A post whose base this client never saw: its list must be fetched.
  const post = await keyPost(3n, ["ann", "zed"], ["ann", "bob"], ["dan"]);
  fetched.push(["ann", "bob", "eve"]); // the key service adds a user: refused
  await assert.rejects(lists.of(post), MembersChanging);
  // Users admitted since the post (an invitee, this client's own user) are in the group
  // now: the list without them has the post's digest, and is taken.
  fetched.push(["ann", "bob", "cat", "dan"]);
  assert.deepEqual(await lists.of(post), ["ann", "bob"]);
  assert.deepEqual(await lists.of(post), ["ann", "bob"]); // remembered
});

test("events reach callbacks and every subscriber, a throwing callback stops nothing", async () => {
  const stream = new EventStream();
  const got: string[] = [];
  const original = console.error;
  console.error = () => undefined; // the callback's error is logged, not thrown
  try {
    stream.on(() => {
      throw new Error("the application's bug");
    });
    stream.on((event) => got.push(event.type));
    const one = stream.subscribe();
    const two = stream.subscribe();
    stream.emit(new EpochChanged(0n, ["ann"], "00000 00000", "dev-a"));
    stream.fail(new UntrustedPost("x"));
    assert.deepEqual(got, ["epoch-changed", "failure"]);
    for (const iterator of [one, two]) {
      assert.equal((await iterator.next()).value?.type, "epoch-changed");
      assert.ok((await iterator.next()).value instanceof MeetingFailure);
    }
    await one.return!();
    stream.emit(new EpochChanged(1n, ["ann"], "00000 00000", "dev-a"));
    assert.equal((await one.next()).done, true);
    assert.equal((await two.next()).value?.type, "epoch-changed");
    assert.equal(stream.failures.length, 1);
  } finally {
    console.error = original;
  }
});

test("a subscriber's return() settles the next() it left waiting, as done", async () => {
  const stream = new EventStream();
  const iterator = stream.subscribe();
  const pending = iterator.next();
  let settled: IteratorResult<MeetingEvent> | undefined;
  void pending.then((result) => (settled = result));
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(settled, undefined); // waiting for an event
  assert.deepEqual(await iterator.return!(), { done: true, value: undefined });
  assert.deepEqual(await withTimeout(pending, 1, () => new Error("next() still waits after return()")), { done: true, value: undefined });
  // Nothing emitted later reaches it, and a `for await` over a returned iterator ends.
  stream.emit(new Ended());
  assert.deepEqual(await iterator.next(), { done: true, value: undefined });
  for await (const event of iterator) assert.fail(`an event after return(): ${event.type}`);
});

test("a for-await loop that breaks while another consumer waits leaves that consumer's wait settled", async () => {
  const stream = new EventStream();
  const iterator = stream.subscribe();
  const waiting = iterator.next(); // e.g. a Promise.race with a timeout that then returns
  stream.emit(new Removed());
  assert.equal((await waiting).value?.type, "removed");
  const next = iterator.next();
  await iterator.return!();
  assert.equal((await next).done, true);
});

test("every event goes through JSON.stringify: bigints as decimal strings, no chat text", () => {
  const big = 2n ** 60n + 1n; // past 2^53: a number would round it
  const events: MeetingEvent[] = [
    new ParticipantJoined(big, "ann", "dev-a"),
    new ParticipantLeft(3n, "bob", "dev-b"),
    new EpochChanged(big, ["ann", "bob"], "12345 67890", "dev-a"),
    new ChatReceived("ann", 1n, big, "a private word"),
    new ConnectionChanged("board", "reconnecting"),
    new ManagementChanged("dev-a", big),
    new ManagementChanged("dev-a", null),
    new MeetingFailure(new UntrustedPost("a post under another device's number")),
    new MeetingFailure("a string thrown"),
    new Removed(),
    new Ended(),
  ];
  const parsed = events.map((event) => JSON.parse(JSON.stringify(event)) as Record<string, unknown>);
  assert.deepEqual(parsed, [
    { type: "participant-joined", sender: big.toString(), userId: "ann", deviceId: "dev-a" },
    { type: "participant-left", sender: "3", userId: "bob", deviceId: "dev-b" },
    { type: "epoch-changed", epoch: big.toString(), members: ["ann", "bob"], securityCode: "12345 67890", manager: "dev-a" },
    { type: "chat-received", userId: "ann", sender: "1", epoch: big.toString() },
    { type: "connection-changed", channel: "board", state: "reconnecting" },
    { type: "management-changed", manager: "dev-a", deputy: big.toString() },
    { type: "management-changed", manager: "dev-a", deputy: null },
    { type: "failure", error: "UntrustedPost: a post under another device's number" },
    { type: "failure", error: "a string thrown" },
    { type: "removed" },
    { type: "ended" },
  ]);
  // Every event's type is covered above (the union's members, one each at least).
  assert.deepEqual(
    new Set(parsed.map((p) => p["type"])),
    new Set(["participant-joined", "participant-left", "epoch-changed", "chat-received", "connection-changed", "management-changed", "failure", "removed", "ended"]),
  );
});

test("chat text stays out of JSON and inspection", () => {
  const shown = [new ChatMessage("ann", 1n, 0n, "a private word"), new ChatReceived("ann", 1n, 0n, "a private word")]
    .map((m) => JSON.stringify(m) + inspect(m))
    .join();
  assert.ok(!shown.includes("a private word"), shown);
  assert.deepEqual(JSON.parse(JSON.stringify(new ChatMessage("ann", 1n, 0n, "a private word"))), { userId: "ann", sender: "1", epoch: "0" });
  assert.equal(new ChatMessage("ann", 1n, 0n, "a private word").text, "a private word");
});

test("meeting timers: Python's defaults, and a fail-over no longer than the heartbeat refused", () => {
  const timers = new MeetingTimers();
  assert.deepEqual(
    [timers.debounce, timers.rekeyInterval, [...timers.joinRetries], timers.epochGrace, timers.heartbeat, timers.failover, timers.postTimeout],
    [10, 300, [1, 5, 10, 10], 5, 3, 10, 120],
  );
  assert.throws(() => new MeetingTimers({ heartbeat: 3, failover: 3 }), RangeError);
});

test("the system clock sleeps past setTimeout's 24.8-day limit: a ratchet set to 30 days (or never) does not spin", async () => {
  for (const seconds of [30 * 86400, Number.POSITIVE_INFINITY]) {
    const controller = new AbortController();
    let woke = false;
    const sleeping = systemClock.sleep(seconds, controller.signal).then(
      () => (woke = true),
      (error: unknown) => error,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(woke, false, `a ${seconds} s sleep ended at once`);
    controller.abort();
    assert.ok((await sleeping) instanceof Cancelled);
  }
});

test("a key read from the epochs is a copy: a caller writing into it changes no held key", async () => {
  const epochs = new Epochs("m");
  const plaintext = Plaintext.generate();
  await epochs.install(0n, 1, plaintext, ["ann"], "dev-a");
  const key = await sessionKey(plaintext, "m", 0n);
  epochs.key(0n)!.fill(0);
  assert.deepEqual(epochs.key(0n), key);
  epochs.close(); // and the copy a caller holds is not the held key that close() wipes
  assert.equal(epochs.key(0n), null);
});

test("a wait with a timeout past setTimeout's limit does not time out at once", async () => {
  const controller = new AbortController();
  let outcome = "pending";
  const waiting = withTimeout(new Promise<never>(() => {}), 30 * 86400, () => new Error("timed out"), controller.signal).catch((error: Error) => {
    outcome = error.name;
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(outcome, "pending");
  controller.abort();
  await waiting;
  assert.equal(outcome, "Cancelled");
});

test("chat held for a key on its way is bounded, oldest out first, and due by epoch in board order", () => {
  const ahead = new Ahead(3);
  const posts = [0, 1, 2, 3, 4].map((i) => [new Post(i, "chat", "u", "d", 0, new Uint8Array()), new Chat(BigInt(5 + (i % 2)), 1n, new Uint8Array(40))] as const);
  for (const [post, message] of posts) ahead.hold(post, message);
  assert.equal(ahead.size, 3); // the first two pushed out
  assert.deepEqual(ahead.due(5n).map(([post]) => post.seq), [2, 4]);
  assert.deepEqual(ahead.due(9n).map(([post]) => post.seq), [3]);
  assert.equal(ahead.size, 0);
  assert.ok(AHEAD_LIMIT >= 100);
});
