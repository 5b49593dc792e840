/** `VeilKeyProvider` against livekit-client's real `BaseKeyProvider` (in Node: no
 * LiveKit server here): per identity and key index, per epoch; the superseded epoch's
 * keys overwritten after the grace period; a removed member given no later key. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { type KeyInfo, KeyProviderEvent, deriveKeys } from "livekit-client";
import { toHex } from "../src/crypto/encoding.js";
import { senderBaseKey } from "../src/crypto/schedule.js";
import { VeilKeyProvider, keyIndex } from "../src/livekit/index.js";
import type { MediaKeySource } from "../src/media/source.js";

const MEETING = "m-livekit";
const SENDERS: Record<string, bigint> = { ann: 0xa11n, bob: 0xb0bn, cat: 0xca7n };
const GRACE = 40;
const session = (n: number): Uint8Array => new Uint8Array(32).fill(n);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A fingerprint of HKDF key material (it is not extractable; it can derive bits). */
async function fingerprint(material: CryptoKey): Promise<string> {
  const params = { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(), info: new Uint8Array() };
  return toHex(new Uint8Array(await crypto.subtle.deriveBits(params, material, 256)));
}

async function expected(identity: string, epoch: bigint, key: Uint8Array): Promise<string> {
  const base = await senderBaseKey(key, MEETING, epoch, SENDERS[identity] ?? 0n, 0);
  return fingerprint(await crypto.subtle.importKey("raw", new Uint8Array(base), "HKDF", false, ["deriveBits"]));
}

/** The key each (identity, index) holds now, as fingerprints. */
async function slots(provider: VeilKeyProvider): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const info of provider.getKeys()) out.set(`${info.participantIdentity}/${info.keyIndex}`, await fingerprint(info.key));
  return out;
}

async function meeting() {
  const provider = new VeilKeyProvider({ meetingId: MEETING, identity: "ann", sender: SENDERS["ann"] ?? 0n, grace: GRACE });
  await provider.setMember("bob", SENDERS["bob"] ?? 0n);
  await provider.setMember("cat", SENDERS["cat"] ?? 0n);
  const set: Array<{ identity: string | undefined; index: number | undefined; current: boolean }> = [];
  provider.on(KeyProviderEvent.SetKey, (info: KeyInfo, current: boolean) => {
    set.push({ identity: info.participantIdentity, index: info.keyIndex, current });
  });
  return { provider, set };
}

test("each member gets its own key per epoch, under the epoch's key index, this participant's last", async () => {
  const { provider, set } = await meeting();
  assert.deepEqual(provider.getOptions(), {
    ...provider.getOptions(), sharedKey: false, ratchetWindowSize: 0, failureTolerance: -1, keyringSize: 16,
  });
  await provider.setEpochKey(3n, session(3));
  assert.deepEqual(set.map((s) => s.identity), ["bob", "cat", "ann"]);
  assert.ok(set.every((s) => s.index === 3));
  assert.equal(provider.getLatestManuallySetKeyIndex(), 3);
  const held = await slots(provider);
  for (const name of ["ann", "bob", "cat"]) assert.equal(held.get(`${name}/3`), await expected(name, 3n, session(3)), name);
  assert.notEqual(held.get("bob/3"), held.get("cat/3"));
  // What LiveKit's worker does with each: its own HKDF to an AES-GCM key.
  const [first] = provider.getKeys();
  assert.ok(first);
  const { encryptionKey } = await deriveKeys(first.key, provider.getOptions());
  assert.equal(encryptionKey.algorithm.name, "AES-GCM");
});

test("a new epoch's keys are set at once; the old epoch's are overwritten after the grace period", async () => {
  const { provider } = await meeting();
  await provider.setEpochKey(3n, session(3));
  await provider.setEpochKey(4n, session(4));
  let held = await slots(provider);
  for (const name of ["ann", "bob", "cat"]) {
    assert.equal(held.get(`${name}/4`), await expected(name, 4n, session(4)));
    assert.equal(held.get(`${name}/3`), await expected(name, 3n, session(3)), "kept for frames in flight");
  }
  await sleep(GRACE * 3);
  held = await slots(provider);
  for (const name of ["ann", "bob", "cat"]) {
    assert.notEqual(held.get(`${name}/3`), await expected(name, 3n, session(3)), `${name}'s epoch-3 key is gone`);
    assert.equal(held.get(`${name}/4`), await expected(name, 4n, session(4)));
  }
  // After overwriting, this participant's current key is the latest set (what LiveKit
  // posts as the sending key after a reconnect).
  assert.equal(provider.getLatestManuallySetKeyIndex(), 4);
  await provider.setEpochKey(2n, session(2)); // older: ignored
  assert.equal(provider.epoch, 4n);
  await provider.forget();
});

test("a removed member gets no key of a later epoch, and its last one goes with its epoch", async () => {
  const { provider, set } = await meeting();
  await provider.setEpochKey(4n, session(4));
  provider.removeMember("cat");
  set.length = 0;
  await provider.setEpochKey(5n, session(5));
  assert.deepEqual(set.map((s) => `${s.identity}/${s.index}`), ["bob/5", "ann/5"]);
  assert.ok(!provider.getKeys().some((k) => k.participantIdentity === "cat" && k.keyIndex === 5));
  await sleep(GRACE * 3);
  const held = await slots(provider);
  assert.notEqual(held.get("cat/4"), await expected("cat", 4n, session(4)));
  await provider.forget();
});

test("a member who joins mid-epoch gets the current key; follow and forget", async () => {
  const listeners: { key?: (epoch: bigint, key: Uint8Array) => void; leave?: () => void } = {};
  const source: MediaKeySource = {
    meetingId: MEETING,
    sender: SENDERS["ann"] ?? 0n,
    onSessionKey: (listener) => ((listeners.key = listener), () => {}),
    onLeave: (listener) => ((listeners.leave = listener), () => {}),
  };
  const provider = new VeilKeyProvider({ meetingId: MEETING, identity: "ann", sender: SENDERS["ann"] ?? 0n, grace: GRACE });
  provider.follow(source);
  listeners.key?.(7n, session(7));
  await provider.setMember("bob", SENDERS["bob"] ?? 0n); // queued behind the key
  let held = await slots(provider);
  assert.equal(held.get("bob/7"), await expected("bob", 7n, session(7)));
  assert.equal(held.get("ann/7"), await expected("ann", 7n, session(7)));
  listeners.leave?.();
  await provider.forget(); // the leave's forget is queued; this one waits behind it
  held = await slots(provider);
  assert.notEqual(held.get("bob/7"), await expected("bob", 7n, session(7)));
  assert.notEqual(held.get("ann/7"), await expected("ann", 7n, session(7)));
  assert.equal(provider.epoch, undefined);
});

test("key indexes wrap with the keyring; no secret in JSON; ratcheting and bad options refused", () => {
  assert.equal(keyIndex(17n, 16), 1);
  assert.equal(keyIndex(255n, 256), 255);
  const provider = new VeilKeyProvider({ meetingId: MEETING, identity: "ann", sender: 1n, keyringSize: 4 });
  assert.equal(JSON.stringify(provider), JSON.stringify("VeilKeyProvider(meeting=m-livekit, identity=ann, epoch=none, members=1)"));
  assert.throws(() => provider.ratchetKey(), /epochs, not by ratcheting/);
  assert.throws(() => provider.removeMember("ann"), RangeError);
  assert.throws(() => new VeilKeyProvider({ meetingId: MEETING, identity: "ann", sender: 1n, keyringSize: 1 }), RangeError);
  assert.throws(() => provider.setEpochKey(1n, new Uint8Array(16)), RangeError);
});
