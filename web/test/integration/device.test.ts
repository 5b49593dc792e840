/** Devices, pins and documents against a real `veil serve` (no mocks). */

import assert from "node:assert/strict";
import { test } from "node:test";
import { inspect } from "node:util";

import { DecryptionError } from "../../src/crypto/errors.js";
import {
  Conflict,
  EncryptedDocument,
  Forbidden,
  MemoryDeviceStore,
  NotFound,
  NotMember,
  PinnedKeyChanged,
  Unauthorized,
  Unavailable,
  WrongPassword,
} from "../../src/client/index.js";
import { KeyServerClient } from "../../src/client/keyserver.js";
import { PrivateKey } from "../../src/crypto/pre.js";
import { toHex } from "../../src/crypto/encoding.js";
import { b64encode } from "../../src/protocol/wire.js";
import { fresh, initialize, skip, tokensFor, urls } from "./services.js";

const encoder = new TextEncoder();

test("a Node device initializes (split trust) and encrypts and decrypts a document", { skip }, async () => {
  const ann = await initialize(fresh("ann"));
  assert.equal(ann.mode, "split-trust");
  assert.match(ann.deviceId, /^[0-9a-f]{32}$/);
  const document = await ann.documents.encrypt(encoder.encode("minutes of the meeting"), { kind: "transcript" });
  assert.deepEqual(await ann.documents.decrypt(document), encoder.encode("minutes of the meeting"));
  // Nothing secret in its JSON.
  const json = JSON.stringify({ ann, document });
  assert.doesNotMatch(json, /minutes/);
});

test("a second device of the same user (split trust) reads the first one's document", { skip }, async () => {
  const sub = fresh("bea");
  const first = await initialize(sub);
  const second = await initialize(sub);
  assert.notEqual(first.deviceId, second.deviceId);
  assert.equal(first.userId, second.userId);
  const document = await first.documents.encrypt(encoder.encode("shared"));
  assert.deepEqual(await second.documents.decrypt(document), encoder.encode("shared"));
});

test("another user reads a document granted to them, and safety numbers agree", { skip }, async () => {
  const cid = await initialize(fresh("cid"));
  const dot = await initialize(fresh("dot"));
  const document = await cid.documents.encrypt(encoder.encode("for dot"), { users: [dot.userId] });
  assert.deepEqual(await dot.documents.decrypt(document, { author: cid.userId }), encoder.encode("for dot"));
  assert.match(await cid.safetyNumber(dot.userId), /^(\d{5} ){5}\d{5}$/);
  assert.equal(await cid.safetyNumber(dot.userId), await dot.safetyNumber(cid.userId));
  const eve = await initialize(fresh("eve"));
  await assert.rejects(eve.documents.decrypt(document), NotMember);
});

test("password mode: the same password opens the user key on a second device, another does not", { skip }, async () => {
  const sub = fresh("pat");
  const password = async (): Promise<string> => "correct horse";
  const first = await initialize(sub, { mode: "password", password });
  const document = await first.documents.encrypt(encoder.encode("pw"));
  const second = await initialize(sub, { mode: "password", password });
  assert.deepEqual(await second.documents.decrypt(document), encoder.encode("pw"));
  await assert.rejects(initialize(sub, { mode: "password", password: async () => "wrong" }), WrongPassword);
});

test("approval mode: a new device waits for an existing one's approval", { skip }, async () => {
  const sub = fresh("amy");
  const first = await initialize(sub, { mode: "approval", showApproval: async () => {} });
  const document = await first.documents.encrypt(encoder.encode("approved"));
  const second = await initialize(sub, {
    mode: "approval",
    showApproval: async (payload) => {
      await first.approveDevice(payload);
    },
  });
  assert.deepEqual(await second.documents.decrypt(document), encoder.encode("approved"));
});

test("groups: a document to a group is read by a member, not after removal", { skip }, async () => {
  const admin = await initialize(fresh("gus"));
  const member = await initialize(fresh("gwen"));
  const groupId = await admin.groups.create(undefined, { members: [member.userId] });
  assert.deepEqual((await admin.groups.get(groupId)).members.includes(member.userId), true);
  const digest = await admin.groups.digest(groupId);
  assert.equal(digest.memberCount, (await admin.groups.get(groupId)).members.length);
  assert.deepEqual(digest.admins, [admin.userId]);
  // Adding an admin twice is a conflict; ensuring one is not (two managers naming a deputy).
  await admin.groups.addAdmins(groupId, [member.userId]);
  await assert.rejects(admin.groups.addAdmins(groupId, [member.userId]), (e) => e instanceof Conflict && e.code === "already_admin");
  await admin.groups.ensureAdmin(groupId, member.userId);
  assert.deepEqual((await admin.groups.digest(groupId)).admins, [admin.userId, member.userId].sort());
  await admin.groups.removeAdmins(groupId, [member.userId]);
  const document = await admin.documents.encrypt(encoder.encode("to the group"), { groups: [groupId] });
  assert.deepEqual(await member.documents.decrypt(document), encoder.encode("to the group"));
  await admin.groups.removeMembers(groupId, [member.userId]);
  await assert.rejects(member.documents.decrypt(document), NotMember);
});

test("a tampered document is refused", { skip }, async () => {
  const ann = await initialize(fresh("tam"));
  const document = await ann.documents.encrypt(encoder.encode("do not touch"));
  const envelope = Uint8Array.from(document.envelope);
  envelope[envelope.length - 1]! ^= 1;
  const tampered = new EncryptedDocument(document.documentId, document.kind, envelope);
  await assert.rejects(ann.documents.decrypt(tampered), DecryptionError);
});

test("a changed pin is refused", { skip }, async () => {
  const ann = await initialize(fresh("pin"));
  const bob = await initialize(fresh("pib"));
  await ann.userKeys([bob.userId]); // pinned
  // Another key under bob's name: what a key service substituting keys would serve.
  const other = PrivateKey.generate().publicKey.bytes();
  assert.throws(() => ann.pins.check(bob.userId, other), PinnedKeyChanged);
  await assert.rejects(ann.pin(`group/none`, other).then(() => ann.pin(`group/none`, bob.masterPublicKey.bytes())), PinnedKeyChanged);
  // The genuine keys are still accepted.
  await ann.userKeys([bob.userId]);
});

test("a member change without an admin's proof is refused by name", { skip }, async () => {
  const ann = await initialize(fresh("prf"));
  const bob = await initialize(fresh("prg"));
  const groupId = await ann.groups.create();
  const forged = PrivateKey.generate(); // not the group key
  // bob, no admin, with a key of his own: refused as not an admin.
  await assert.rejects(bob.session.addMember(groupId, forged, { userId: bob.userId, master: bob.masterPublicKey }), (error: unknown) => {
    assert.ok(error instanceof Forbidden);
    assert.equal(error.code, "not_admin");
    return true;
  });
  // ann, the admin, whose proof is not made with the group key: refused too.
  await assert.rejects(ann.session.addMember(groupId, forged, { userId: bob.userId, master: bob.masterPublicKey }), (error: unknown) => {
    assert.ok(error instanceof Forbidden);
    assert.equal(error.code, "invalid_proof");
    return true;
  });
  assert.deepEqual((await ann.groups.get(groupId)).members.includes(bob.userId), false);
});

test("service errors are named by the service's code; a network error names the URL", { skip }, async () => {
  const client = new KeyServerClient(urls.keyserver);
  await assert.rejects(client.deviceRecord("0".repeat(32)), NotFound);
  await assert.rejects(client.escrow("not a token"), Unauthorized);
  const nowhere = new KeyServerClient("http://127.0.0.1:9");
  await assert.rejects(nowhere.deviceRecord("abc"), (error: unknown) => {
    assert.ok(error instanceof Unavailable);
    assert.match(error.message, /GET http:\/\/127\.0\.0\.1:9\/v1\/devices\/abc: /);
    return true;
  });
});

test("a store with a context loads it and needs no registration", { skip }, async () => {
  const sub = fresh("sto");
  const store = new MemoryDeviceStore();
  const first = await initialize(sub, { store });
  const again = await initialize(sub, { store, tokens: tokensFor(sub) });
  assert.equal(again.deviceId, first.deviceId);
  await first.revokeDevice(first.deviceId).catch(() => undefined);
});

test("no secret reaches JSON or inspection of the SDK's objects", { skip }, async () => {
  const store = new MemoryDeviceStore();
  const device = await initialize(fresh("sec"), { store });
  const context = (await store.load())!;
  const secrets = [context.deviceKey.toSecretBytes(), (await device.userKey()).toSecretBytes()].flatMap((key) => [
    b64encode(key),
    toHex(key),
  ]);
  for (const object of [device, context, store, device.session, device.keyserver, device.groups, device.documents]) {
    for (const shown of [JSON.stringify(object), inspect(object, { depth: 10, showHidden: true })]) {
      for (const secret of secrets) assert.equal(shown.includes(secret), false);
    }
  }
});
