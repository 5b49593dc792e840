/** RFC 9605's published vectors (../shared/vectors/rfc9605), every suite, and the replay window. */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";

import { concat, fromHex, toHex } from "../src/crypto/encoding.js";
import {
  type CipherSuite,
  ReplayWindow,
  SFrameReceiver,
  SFrameSender,
  deriveKeySalt,
  encodeHeader,
  parseHeader,
} from "../src/crypto/sframe.js";

const path = new URL("../../../../shared/vectors/rfc9605/test-vectors.json", import.meta.url);
const skip = existsSync(path) ? false : "../shared/vectors is not here";
// KIDs and counters reach 2^64 - 1: read them as strings, not doubles.
const text = skip ? '{"header":[],"sframe":[]}' : readFileSync(path, "utf8");
const vectors = JSON.parse(text.replace(/"(kid|ctr)":\s*(\d+)/g, '"$1":"$2"'));

test("§4.3 headers encode and parse as published", { skip }, () => {
  assert.ok(vectors.header.length > 250);
  for (const { kid, ctr, encoded } of vectors.header) {
    const [k, c] = [BigInt(kid), BigInt(ctr)];
    assert.equal(toHex(encodeHeader(k, c)), encoded);
    assert.deepEqual(parseHeader(fromHex(encoded)), { kid: k, ctr: c, size: encoded.length / 2 });
  }
});

test("every suite's SFrame vector: key, salt and ciphertext", { skip }, async () => {
  assert.equal(vectors.sframe.length, 5);
  for (const v of vectors.sframe) {
    const suite = v.cipher_suite as CipherSuite;
    const kid = BigInt(v.kid);
    const { key, salt } = await deriveKeySalt(suite, kid, fromHex(v.base_key));
    assert.equal(toHex(key), v.sframe_key, `suite ${suite} key`);
    assert.equal(toHex(salt), v.sframe_salt, `suite ${suite} salt`);
    const sender = await SFrameSender.create(kid, fromHex(v.base_key), suite);
    sender.seek(BigInt(v.ctr));
    const frame = await sender.protect(fromHex(v.pt), fromHex(v.metadata));
    assert.equal(toHex(frame), v.ct, `suite ${suite} ciphertext`);
    const receiver = new SFrameReceiver();
    await receiver.addKey(kid, fromHex(v.base_key), suite);
    assert.equal(toHex(await receiver.unprotect(frame, fromHex(v.metadata))), v.pt);
    await assert.rejects(receiver.unprotect(frame, fromHex(v.metadata)), { name: "ReplayedFrame" });
  }
});

test("tampered, unknown-KID and replayed frames are refused, counted apart", async () => {
  const base = crypto.getRandomValues(new Uint8Array(32));
  const sender = await SFrameSender.create(7n, base);
  const receiver = new SFrameReceiver();
  await receiver.addKey(7n, base);
  const frames = [];
  for (let i = 0; i < 3; i++) frames.push(await sender.protect(new Uint8Array([i])));
  const [first, second, third] = frames as [Uint8Array, Uint8Array, Uint8Array];
  assert.deepEqual(await receiver.unprotect(third), new Uint8Array([2]));
  assert.deepEqual(await receiver.unprotect(first), new Uint8Array([0])); // late, in the window
  const tampered = Uint8Array.from(second);
  tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
  await assert.rejects(receiver.unprotect(tampered), { name: "DecryptionError" });
  assert.deepEqual(await receiver.unprotect(second), new Uint8Array([1])); // a failed try spends nothing
  await assert.rejects(receiver.unprotect(second), { name: "ReplayedFrame" });
  receiver.removeKey(7n);
  await assert.rejects(receiver.unprotect(third), { name: "UnknownKeyId" });
  await assert.rejects(receiver.addKey(7n, base).then(() => receiver.addKey(7n, new Uint8Array(32))), RangeError);
});

test("the replay window refuses what fell behind it", () => {
  const window = new ReplayWindow(4);
  window.accept(10n);
  assert.throws(() => window.check(6n), { name: "ReplayedFrame" });
  window.check(7n);
  window.accept(7n);
  assert.throws(() => window.accept(7n), { name: "ReplayedFrame" });
  window.accept(100n);
  assert.throws(() => window.check(10n), { name: "ReplayedFrame" });
});

test("the replay window agrees with a plain model across 32-bit halves and up to 2^64 - 1", () => {
  // Counters are two 32-bit halves per frame (no BigInt): check the ring against a set.
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  for (const [start, size] of [[0n, 4], [2n ** 32n - 40n, 128], [2n ** 53n - 20n, 64], [2n ** 64n - 300n, 128], [5n, 1], [0n, 100]] as const) {
    const window = new ReplayWindow(size);
    const accepted = new Set<bigint>();
    let top = -1n;
    for (let i = 0; i < 2000; i++) {
      const offset = BigInt(random(260));
      const ctr = start + offset > 2n ** 64n - 1n ? 2n ** 64n - 1n : start + offset;
      const fresh = ctr > top || (top - ctr < BigInt(size) && !accepted.has(ctr));
      if (fresh) {
        window.accept(ctr);
        accepted.add(ctr);
        if (ctr > top) top = ctr;
      } else {
        assert.throws(() => window.check(ctr), { name: "ReplayedFrame" }, `${ctr} after ${top}`);
        assert.throws(() => window.accept(ctr), { name: "ReplayedFrame" });
      }
      assert.equal(window.top, top);
    }
  }
  const window = new ReplayWindow(128);
  window.accept(3n);
  window.accept(2n ** 64n - 1n); // a jump over the whole window
  assert.throws(() => window.check(3n), { name: "ReplayedFrame" });
  assert.throws(() => window.check(2n ** 64n - 1n), { name: "ReplayedFrame" });
  window.accept(2n ** 64n - 2n);
  assert.throws(() => window.check(2n ** 64n), RangeError);
});

test("a sender's counter crosses 2^32 and ends at 2^64 - 1, as the header says", async () => {
  const base = crypto.getRandomValues(new Uint8Array(32));
  const sender = await SFrameSender.create(2n ** 40n + 3n, base);
  const receiver = new SFrameReceiver();
  await receiver.addKey(2n ** 40n + 3n, base);
  for (const [from, count] of [[2n ** 32n - 2n, 4], [2n ** 53n - 1n, 3], [2n ** 64n - 2n, 2]] as const) {
    sender.seek(from);
    for (let i = 0n; i < BigInt(count); i++) {
      const frame = await sender.protect(new Uint8Array([Number(i)]));
      assert.deepEqual(parseHeader(frame), { kid: 2n ** 40n + 3n, ctr: from + i, size: parseHeader(frame).size });
      assert.equal(toHex(frame.subarray(0, parseHeader(frame).size)), toHex(encodeHeader(2n ** 40n + 3n, from + i)));
      assert.deepEqual(await receiver.unprotect(frame), new Uint8Array([Number(i)]));
    }
  }
  await assert.rejects(sender.protect(new Uint8Array(1)), RangeError); // 2^64 - 1 was the last
});

test("a frame too short for its tag is refused as tampered, a VP8 frame's clear bytes go back in front", async () => {
  const base = crypto.getRandomValues(new Uint8Array(32));
  const receiver = new SFrameReceiver();
  await receiver.addKey(7n, base);
  // A malformed header is a rejected promise too, not a throw at the call.
  await assert.rejects(receiver.unprotect(new Uint8Array(0)), { name: "InvalidLength" });
  await assert.rejects(receiver.unprotect(Uint8Array.of(0xff)), { name: "InvalidLength" });
  for (const length of [0, 1, 15]) {
    const frame = concat([encodeHeader(7n, 3n), new Uint8Array(length)]);
    await assert.rejects(receiver.unprotect(frame), { name: "DecryptionError" }, `${length} bytes`);
  }
  const sender = await SFrameSender.create(7n, base);
  const sealed = await sender.protectAfter(Uint8Array.of(1, 2, 3), Uint8Array.of(4, 5), Uint8Array.of(9));
  assert.deepEqual(sealed.subarray(0, 3), Uint8Array.of(1, 2, 3));
  const opened = await receiver.unprotectAfter(Uint8Array.of(1, 2, 3), sealed.subarray(3), Uint8Array.of(9));
  assert.deepEqual(opened, Uint8Array.of(1, 2, 3, 4, 5));
  assert.equal(opened.byteLength, opened.buffer.byteLength); // a frame's data as it is set
});
