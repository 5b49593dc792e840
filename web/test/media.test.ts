/** The media worker's frame rules (`src/media`) on plain frames, with a test clock. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { fromHex, toHex } from "../src/crypto/encoding.js";
import { mediaKid, senderBaseKey } from "../src/crypto/schedule.js";
import { SFrameReceiver, SFrameSender, encodeHeader } from "../src/crypto/sframe.js";
import { FrameCipher } from "../src/media/cipher.js";
import type { EncodedFrame } from "../src/media/frames.js";
import { clearBytes } from "../src/media/layout.js";
import { PENDING_LIMIT, Receiving } from "../src/media/receive.js";
import { Sending } from "../src/media/send.js";

const MEETING = "m-1";
const ALICE = 0x123456789an;
const BOB = 0x2n;
const GRACE = 5000;
const key = (n: number): Uint8Array => new Uint8Array(32).fill(n);

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 0;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

function pair(t = clock()) {
  const alice = new FrameCipher({ meetingId: MEETING, sender: ALICE, grace: GRACE, clock: t.now });
  const bob = new FrameCipher({ meetingId: MEETING, sender: BOB, grace: GRACE, clock: t.now });
  return { alice, bob, t };
}

function vp8(keyFrame: boolean, size = 300): Uint8Array {
  const data = crypto.getRandomValues(new Uint8Array(size));
  data[0] = keyFrame ? (data[0] ?? 0) & 0xfe : (data[0] ?? 0) | 1;
  return data;
}

function frame(data: Uint8Array, mimeType: string): EncodedFrame {
  return { data: Uint8Array.from(data).buffer, getMetadata: () => ({ mimeType }) };
}

test("VP8 keeps 10 clear bytes on key frames and 1 on delta frames, authenticated", async () => {
  const { alice, bob } = pair();
  alice.setKey(1n, key(1));
  bob.setKey(1n, key(1));
  for (const [keyFrame, n] of [[true, 10], [false, 1]] as const) {
    const plain = vp8(keyFrame);
    assert.equal(clearBytes("video/vp8", plain), n);
    const sealed = (await alice.seal(1, "video/vp8", plain)) as Uint8Array;
    assert.deepEqual(sealed.subarray(0, n), plain.subarray(0, n));
    assert.equal(sealed.length, plain.length + 16 + encodeHeader(mediaKid(1n, ALICE, 1), 0n).length);
    const opened = await bob.open("video/vp8", sealed);
    assert.equal(opened.kind, "frame");
    assert.deepEqual(opened.kind === "frame" && opened.data, plain);
    // A changed clear byte (that keeps the layout) fails the frame: it is in the AAD.
    const again = (await alice.seal(1, "video/vp8", plain)) as Uint8Array;
    again[n - 1] = (again[n - 1] ?? 0) ^ (n === 1 ? 0x10 : 1);
    assert.deepEqual(await bob.open("video/vp8", again), { kind: "drop", reason: "tampered" });
  }
  assert.equal(bob.counters.decrypted, 2);
  assert.equal(bob.counters.tampered, 2);
});

test("Opus frames are whole SFrame frames under Veil's per-sender key, as the Python SDK seals them", async () => {
  const { alice } = pair();
  alice.setKey(7n, key(7));
  const plain = crypto.getRandomValues(new Uint8Array(80));
  const sealed = (await alice.seal(0, "audio/opus", plain)) as Uint8Array;
  const receiver = new SFrameReceiver();
  await receiver.addKey(mediaKid(7n, ALICE, 0), await senderBaseKey(key(7), MEETING, 7n, ALICE, 0));
  assert.deepEqual(await receiver.unprotect(sealed, new TextEncoder().encode(MEETING)), plain);
});

test("replayed, wrong-sender, own-sender and malformed frames are dropped and counted", async () => {
  const { alice, bob } = pair();
  alice.setKey(1n, key(1));
  bob.setKey(1n, key(1));
  const sealed = (await alice.seal(0, "audio/opus", new Uint8Array(40))) as Uint8Array;
  assert.equal((await bob.open("audio/opus", sealed, ALICE)).kind, "frame");
  assert.deepEqual(await bob.open("audio/opus", sealed, ALICE), { kind: "drop", reason: "replayed" });
  const next = (await alice.seal(0, "audio/opus", new Uint8Array(40))) as Uint8Array;
  assert.deepEqual(await bob.open("audio/opus", next, 0x99n), { kind: "drop", reason: "wrong_sender" });
  // Bound to the wrong sender, the frame moved no window: it still opens where it belongs.
  assert.equal((await bob.open("audio/opus", next, ALICE)).kind, "frame");
  const mine = (await bob.seal(0, "audio/opus", new Uint8Array(40))) as Uint8Array;
  assert.deepEqual(await bob.open("audio/opus", mine), { kind: "drop", reason: "wrong_sender" });
  assert.deepEqual(await bob.open("audio/opus", Uint8Array.of(0x90)), { kind: "drop", reason: "tampered" });
  assert.deepEqual(bob.counters, {
    sent: 1, no_key: 0, decrypted: 2, tampered: 1, replayed: 1, unknown_epoch: 0, wrong_sender: 2, pending: 0,
  });
});

test("a frame under a made-up KID of a held epoch leaves no key behind", async () => {
  const { bob } = pair();
  bob.setKey(1n, key(1));
  const forged = await SFrameSender.create(mediaKid(1n, 0x77n, 3), key(9));
  const frame = await forged.protect(new Uint8Array(40), new TextEncoder().encode(MEETING));
  assert.deepEqual(await bob.open("audio/opus", frame), { kind: "drop", reason: "tampered" });
  assert.match(JSON.stringify(bob), /FrameCipher\(sender=2, epochs=1\)/);
});

test("a failed frame that drops a new KID's key cannot reset the window of one that opened meanwhile", async () => {
  // Two receivers of one sender's stream (a resubscribed track, a second transform) open
  // frames of one FrameCipher concurrently. The first frame under the KID is forged;
  // while it fails, an honest frame under the same KID opens. Dropping the key then would
  // take the honest frame's place in the replay window with it: its replay would open.
  const { alice, bob } = pair();
  alice.setKey(1n, key(1));
  bob.setKey(1n, key(1));
  const forged = await SFrameSender.create(mediaKid(1n, ALICE, 0), key(9));
  const bad = await forged.protect(new Uint8Array(40), new TextEncoder().encode(MEETING));
  const honest = (await alice.seal(0, "audio/opus", new Uint8Array(40))) as Uint8Array;
  const [first, second] = await Promise.all([bob.open("audio/opus", bad, ALICE), bob.open("audio/opus", honest, ALICE)]);
  assert.deepEqual(first, { kind: "drop", reason: "tampered" });
  assert.equal(second.kind, "frame");
  assert.deepEqual(await bob.open("audio/opus", honest, ALICE), { kind: "drop", reason: "replayed" });
  assert.equal(bob.counters.decrypted, 1);
});

test("a sender holds its frames back until it has a key, then asks for a key frame", async () => {
  const { alice } = pair();
  let keyFrames = 0;
  const sending = new Sending(alice, 1, "video", () => void (keyFrames += 1));
  assert.equal(await sending.seal(frame(vp8(true), "video/VP8")), false);
  assert.equal(alice.counters.no_key, 1);
  alice.setKey(1n, key(1));
  assert.equal(await sending.seal(frame(vp8(false), "video/VP8")), true);
  assert.equal(keyFrames, 1);
});

test("a new epoch: the sender switches at once; receivers open the old one for the grace period", async () => {
  const { alice, bob, t } = pair();
  alice.setKey(1n, key(1));
  bob.setKey(1n, key(1));
  const old = (await alice.seal(0, "audio/opus", new Uint8Array(10))) as Uint8Array;
  const late = (await alice.seal(0, "audio/opus", new Uint8Array(10))) as Uint8Array;
  alice.setKey(2n, key(2));
  bob.setKey(2n, key(2));
  const fresh = (await alice.seal(0, "audio/opus", new Uint8Array(10))) as Uint8Array;
  const opened = await bob.open("audio/opus", fresh);
  assert.equal(opened.kind === "frame" && opened.epoch, 2n);
  t.advance(GRACE - 1);
  assert.equal((await bob.open("audio/opus", old)).kind, "frame");
  t.advance(1);
  bob.expire();
  assert.deepEqual(await bob.open("audio/opus", late), { kind: "wait" }); // epoch 1 is gone
  assert.deepEqual(bob.epochs.epochs, [2n]);
});

test("frames of an epoch not held yet wait for its key, in order; unknown epochs are dropped after the grace", async () => {
  const { alice, bob, t } = pair();
  const receiving = new Receiving(bob, "audio", GRACE, t.now, ALICE);
  const out: Uint8Array[] = [];
  const deliver = (f: EncodedFrame): void => void out.push(new Uint8Array(f.data));
  alice.setKey(3n, key(3));
  const sent = [1, 2, 3].map((n) => new Uint8Array(20).fill(n));
  for (const s of sent) await receiving.receive(frame((await alice.seal(0, "audio/opus", s)) as Uint8Array, "audio/opus"), deliver);
  assert.equal(receiving.pending, 3);
  bob.setKey(3n, key(3));
  await receiving.retry(deliver);
  assert.deepEqual(out, sent);
  // An epoch Bob never gets: the frame waits the grace period, then is counted.
  const stranger = new FrameCipher({ meetingId: MEETING, sender: ALICE, grace: GRACE, clock: t.now });
  stranger.setKey(9n, key(9));
  await receiving.receive(frame((await stranger.seal(0, "audio/opus", sent[0] as Uint8Array)) as Uint8Array, "audio/opus"), deliver);
  assert.equal(receiving.pending, 1);
  // ... without holding back the frames behind it.
  await receiving.receive(frame((await alice.seal(0, "audio/opus", sent[1] as Uint8Array)) as Uint8Array, "audio/opus"), deliver);
  assert.equal(out.length, 4);
  t.advance(GRACE + 1);
  await receiving.retry(deliver);
  assert.equal(receiving.pending, 0);
  assert.equal(bob.counters.unknown_epoch, 1);
});

test("a key that arrives while frames wait releases them before the next frame, in order", async () => {
  const { alice, bob, t } = pair();
  const receiving = new Receiving(bob, "audio", GRACE, t.now, ALICE);
  const out: number[] = [];
  const deliver = (f: EncodedFrame): void => void out.push(new Uint8Array(f.data)[0] ?? -1);
  alice.setKey(4n, key(4));
  const seal = async (n: number): Promise<EncodedFrame> =>
    frame((await alice.seal(0, "audio/opus", Uint8Array.of(n))) as Uint8Array, "audio/opus");
  for (const n of [1, 2]) await receiving.receive(await seal(n), deliver);
  bob.setKey(4n, key(4)); // the key's retry is not run: the next frame must not overtake
  await receiving.receive(await seal(3), deliver);
  assert.deepEqual(out, [1, 2, 3]);
});

test("at most PENDING_LIMIT frames wait; the oldest are dropped and counted", async () => {
  const { alice, bob, t } = pair();
  const receiving = new Receiving(bob, "audio", GRACE, t.now);
  alice.setKey(1n, key(1));
  for (let i = 0; i < PENDING_LIMIT + 3; i++) {
    await receiving.receive(frame((await alice.seal(0, "audio/opus", new Uint8Array(4))) as Uint8Array, "audio/opus"), () => {});
  }
  assert.equal(receiving.pending, PENDING_LIMIT);
  assert.equal(bob.counters.unknown_epoch, 3);
});

test("a different key for the current epoch replaces it; an older epoch is ignored", async () => {
  const { alice, bob } = pair();
  alice.setKey(5n, key(5));
  bob.setKey(5n, key(50));
  const sealed = (await alice.seal(0, "audio/opus", new Uint8Array(10))) as Uint8Array;
  assert.deepEqual(await bob.open("audio/opus", sealed), { kind: "drop", reason: "tampered" });
  assert.equal(bob.setKey(5n, key(5)), true);
  assert.equal(bob.setKey(4n, key(4)), false);
  const next = (await alice.seal(0, "audio/opus", new Uint8Array(10))) as Uint8Array;
  assert.equal((await bob.open("audio/opus", next)).kind, "frame");
  bob.forget();
  assert.deepEqual(bob.epochs.epochs, []);
  assert.equal(await bob.seal(0, "audio/opus", new Uint8Array(1)), undefined);
});

test("the Python SDK's media frames open here as Opus frames, bound to their sender", async () => {
  // web/vectors/python.json (or VEIL_VECTORS): frames sealed by `veil` under its key schedule.
  const path = process.env.VEIL_VECTORS ?? new URL("../../vectors/python.json", import.meta.url);
  const plan = JSON.parse(readFileSync(path, "utf8")).meeting.schedule;
  const sender = BigInt(plan.sender);
  const receiver = new FrameCipher({ meetingId: plan.meeting_id, sender: sender + 1n, grace: GRACE, clock: () => 0 });
  receiver.setKey(BigInt(plan.epoch), fromHex(plan.session_key));
  for (const { frame, payload } of plan.frames) {
    const opened = await receiver.open("audio/opus", fromHex(frame), sender);
    assert.equal(opened.kind, "frame");
    if (opened.kind !== "frame") continue;
    assert.equal(toHex(opened.data), payload);
    assert.deepEqual([opened.sender, opened.stream, opened.epoch], [sender, plan.stream, BigInt(plan.epoch)]);
  }
  assert.equal(receiver.counters.decrypted, plan.frames.length);
});
