/** The alterations of the Janus test's malicious SFU (browser/on-the-way.ts) against the
 * real `FrameCipher`: each is dropped under its own counter, and the honest frames
 * between them open. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { parseMediaKid } from "../src/crypto/schedule.js";
import { parseHeader } from "../src/crypto/sframe.js";
import { FrameCipher } from "../src/media/cipher.js";
import { clearBytes } from "../src/media/layout.js";
import { OnTheWay, noAlterations, withKid } from "./browser/on-the-way.js";

const MEETING = "m-1";
const ANN = 0x1234n;
const BOB = 0xb0bn;

function members() {
  const bob = new FrameCipher({ meetingId: MEETING, sender: BOB, grace: 5000, clock: () => 0 });
  const ann = new FrameCipher({ meetingId: MEETING, sender: ANN, grace: 5000, clock: () => 0 });
  bob.setKey(3n, new Uint8Array(32).fill(3));
  ann.setKey(3n, new Uint8Array(32).fill(3));
  return { ann, bob };
}

function vp8(keyFrame: boolean): Uint8Array {
  const data = crypto.getRandomValues(new Uint8Array(200));
  data[0] = keyFrame ? (data[0] ?? 0) & 0xfe : (data[0] ?? 0) | 1;
  return data;
}

test("a rewritten KID keeps the clear bytes, the counter and the ciphertext", async () => {
  const { bob } = members();
  for (const keyFrame of [true, false]) {
    const sealed = (await bob.seal(1, "video/vp8", vp8(keyFrame))) as Uint8Array;
    const n = clearBytes("video/vp8", sealed);
    const before = parseHeader(sealed.subarray(n));
    const after = withKid("video/vp8", sealed, () => 0x1_0000_0000_0000n);
    const header = parseHeader(after.subarray(n));
    assert.deepEqual(after.subarray(0, n), sealed.subarray(0, n));
    assert.equal(header.kid, 0x1_0000_0000_0000n);
    assert.equal(header.ctr, before.ctr);
    assert.deepEqual(after.subarray(n + header.size), sealed.subarray(n + before.size));
  }
});

test("each alteration is dropped by name; the honest frames open", async () => {
  for (const [codec, make] of [["audio/opus", () => crypto.getRandomValues(new Uint8Array(80))], ["video/vp8", () => vp8(false)]] as const) {
    const { ann, bob } = members();
    const altered = noAlterations();
    const way = new OnTheWay(3, altered);
    const kids: bigint[] = [];
    for (let i = 0; i < 48; i++) {
      const sealed = (await bob.seal(0, codec, make())) as Uint8Array;
      const sent = way.next(codec, sealed, ANN);
      kids.push(parseHeader(sent.subarray(clearBytes(codec, sent))).kid);
      await ann.open(codec, sent, BOB);
    }
    assert.deepEqual(altered, { tamper: 4, replay: 4, kid: 4, epoch: 4 });
    // The KIDs rewritten: to ann's own sender number, and to an epoch no one holds.
    assert.equal(kids.filter((kid) => parseMediaKid(kid).sender === ANN).length, 4);
    assert.equal(kids.filter((kid) => parseMediaKid(kid).epoch !== 3n).length, 4);
    const { decrypted, tampered, replayed, wrong_sender } = ann.counters;
    assert.deepEqual({ decrypted, tampered, replayed, wrong_sender }, { decrypted: 32, tampered: 4, replayed: 4, wrong_sender: 4 });
  }
});

test("frames pass untouched until another member is named", async () => {
  const { bob } = members();
  const altered = noAlterations();
  const way = new OnTheWay(3, altered);
  for (let i = 0; i < 9; i++) {
    const sealed = (await bob.seal(0, "audio/opus", new Uint8Array(20))) as Uint8Array;
    assert.equal(way.next("audio/opus", sealed, undefined), sealed);
  }
  assert.deepEqual(altered, noAlterations());
  assert.throws(() => new OnTheWay(2, altered), RangeError);
});
