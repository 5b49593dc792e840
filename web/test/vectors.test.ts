/**
 * The Python SDK's values (web/vectors/python.json, made by `python -m veil.vectors
 * make`), checked entry by entry with this SDK.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { fromHex, toHex } from "../src/crypto/encoding.js";
import * as pg from "../src/crypto/pairing.js";
import { openDocument, openStream } from "../src/crypto/aead.js";
import { openSealed } from "../src/crypto/chat.js";
import { openEscrow, splitTrustPassword } from "../src/crypto/escrow.js";
import {
  EncryptedValue,
  Plaintext,
  PrivateKey,
  PublicKey,
  TransformKey,
  decodeScalar,
  decrypt,
} from "../src/crypto/pre.js";
import { chatKey, mediaKid, parseMediaKid, senderBaseKey, sessionKey } from "../src/crypto/schedule.js";
import { SchnorrSignature, verify } from "../src/crypto/schnorr.js";
import { SFrameReceiver } from "../src/crypto/sframe.js";
import { BoardMessageError, End, HandOver, KeyPost, parse } from "../src/protocol/board.js";
import { memberDigest, securityCode, sortedByCodePoint } from "../src/protocol/members.js";
import { VerifyingKey } from "../src/crypto/signing.js";
import {
  NONCE_HEADER,
  SIGNATURE_HEADER,
  b64decode,
  b64encode,
  canonicalQuery,
  deviceCertificateMessage,
  deviceId,
  deviceProofMessage,
  helloMessage,
  meetingProofMessage,
  pathSegment,
  postMessage,
  requestMessage,
  signedPath,
} from "../src/protocol/wire.js";

// VEIL_VECTORS names a fresh document (the Python tests make one); else the committed one.
const path = process.env.VEIL_VECTORS ?? new URL("../../vectors/python.json", import.meta.url);
const document = JSON.parse(readFileSync(path, "utf8"));

test("the document is the format this SDK reads", () => {
  assert.equal(document.format, "veil-vectors/1");
  assert.equal(document.made_by, "python");
});

test("G1 and G2 points encode as Python's", () => {
  for (const entry of document.pairing.g1) {
    const k = decodeScalar(fromHex(entry.scalar));
    assert.equal(toHex(pg.encodeG1(pg.P.multiply(k))), entry.point);
    assert.ok(pg.decodeG1(fromHex(entry.point)).equals(pg.P.multiply(k)));
  }
  for (const entry of document.pairing.g2) {
    const k = decodeScalar(fromHex(entry.scalar));
    assert.equal(toHex(pg.encodeG2(pg.Q.multiply(k))), entry.point);
    assert.ok(pg.decodeG2(fromHex(entry.point)).equals(pg.Q.multiply(k)));
  }
});

test("GT elements, full and compressed, are Python's", () => {
  for (const entry of document.pairing.gt) {
    const x = pg.powSecret(pg.GT_GENERATOR, decodeScalar(fromHex(entry.scalar)));
    assert.equal(toHex(pg.encodeGt(x)), entry.full);
    assert.equal(toHex(pg.compressGt(x)), entry.compressed);
    assert.ok(pg.gtEqual(pg.decompressGt(fromHex(entry.compressed)), x));
  }
});

test("RFC 9380 hash-to-G2 with Veil's tag gives Python's points", () => {
  for (const entry of document.pairing.hash_to_g2) {
    assert.equal(toHex(pg.encodeG2(pg.hashToG2(fromHex(entry.message)))), entry.point);
  }
});

const decoders: Record<string, (bytes: Uint8Array) => Promise<unknown>> = {
  g1: async (b) => pg.decodeG1(b),
  g2: async (b) => pg.decodeG2(b),
  gt: async (b) => pg.decompressGt(b),
  ciphertext: async (b) => EncryptedValue.fromBytes(b).verify(),
  transform_key: async (b) => TransformKey.fromBytes(b).verify(),
};

test("what Python refuses, this SDK refuses with the same error", async () => {
  for (const entry of [...document.pairing.refused, ...document.pre.refused]) {
    const decode = decoders[entry.kind];
    assert.ok(decode, entry.kind);
    await assert.rejects(decode(fromHex(entry.bytes)), { name: entry.error }, `${entry.kind}: ${entry.error}`);
  }
});

test("ciphertexts at levels 0, 1 and 2 decrypt with the origin check; keys verify", async () => {
  for (const chain of document.pre.chains) {
    const keys = chain.keys.map((k: string) => PrivateKey.fromSecretBytes(fromHex(k)));
    assert.deepEqual(
      keys.map((k: PrivateKey) => toHex(k.publicKey.bytes())),
      chain.public_keys,
    );
    const plaintext = Plaintext.fromSecretBytes(fromHex(chain.plaintext));
    const values = chain.levels.map((v: string) => EncryptedValue.fromBytes(fromHex(v)));
    const origin = await values[0].verify();
    assert.equal(toHex(origin.signer.bytes()), chain.author);
    for (const [level, value] of values.entries()) {
      assert.equal(toHex(value.bytes()), chain.levels[level]); // re-encodes byte for byte
      const opened = await decrypt(await value.verify(), keys[level], { origin });
      assert.ok(opened.equals(plaintext), `level ${level}`);
      await assert.rejects(decrypt(await value.verify(), PrivateKey.generate()), { name: "DecryptionError" });
    }
    for (const [hop, raw] of chain.transform_keys.entries()) {
      const key = await TransformKey.fromBytes(fromHex(raw)).verify();
      assert.equal(toHex(key.bytes()), raw);
      assert.ok(key.toPublicKey.equals(keys[hop + 1].publicKey));
    }
  }
});

test("Schnorr proofs made in Python verify, and re-encode byte for byte", async () => {
  for (const entry of document.schnorr) {
    const key = PrivateKey.fromSecretBytes(fromHex(entry.key));
    assert.equal(toHex(key.publicKey.bytes()), entry.public_key);
    const signature = SchnorrSignature.fromBytes(fromHex(entry.signature));
    assert.equal(toHex(signature.bytes()), entry.signature);
    await verify(signature, fromHex(entry.message), key.publicKey);
    const other = new Uint8Array([...fromHex(entry.message), 0]);
    await assert.rejects(verify(signature, other, key.publicKey), { name: "InvalidSignature" });
  }
});

test("the key schedule, KIDs and chat are Python's", async () => {
  const plan = document.meeting.schedule;
  const epoch = BigInt(plan.epoch);
  const sender = BigInt(plan.sender);
  const session = await sessionKey(Plaintext.fromSecretBytes(fromHex(plan.plaintext)), plan.meeting_id, epoch);
  assert.equal(toHex(session), plan.session_key);
  assert.equal(toHex(await senderBaseKey(session, plan.meeting_id, epoch, sender, plan.stream)), plan.base_key);
  assert.equal(toHex(await chatKey(session, plan.meeting_id, epoch)), plan.chat_key);
  assert.equal(mediaKid(epoch, sender, plan.stream).toString(), plan.kid);
  assert.deepEqual(parseMediaKid(BigInt(plan.kid)), { epoch: epoch & 0xffffn, sender, stream: plan.stream });
  const receiver = new SFrameReceiver();
  await receiver.addKey(BigInt(plan.kid), fromHex(plan.base_key));
  const metadata = new TextEncoder().encode(plan.meeting_id);
  for (const frame of plan.frames) {
    assert.equal(toHex(await receiver.unprotect(fromHex(frame.frame), metadata)), frame.payload);
  }
  const text = await openSealed(session, fromHex(plan.chat.sealed), plan.meeting_id, epoch, sender);
  assert.equal(toHex(text), plan.chat.text);
  await assert.rejects(openSealed(session, fromHex(plan.chat.sealed), plan.meeting_id, epoch, sender + 1n), {
    name: "DecryptionError",
  });
  for (const entry of document.meeting.members) {
    assert.equal(toHex(await memberDigest(entry.members)), entry.digest);
    assert.equal(await securityCode(session, epoch, entry.members), entry.code);
  }
});

test("base64url, path segments, queries and signed requests are Python's", async () => {
  const wire = document.wire;
  for (const { bytes, text } of wire.b64) {
    assert.equal(b64encode(fromHex(bytes)), text);
    assert.equal(toHex(b64decode(text)), bytes);
  }
  assert.throws(() => b64decode("AB="), TypeError);
  assert.throws(() => b64decode("AR"), TypeError); // non-canonical trailing bits
  for (const { id, segment } of wire.path_segments) assert.equal(pathSegment(id), segment, id);
  for (const { query, canonical } of wire.queries) assert.equal(canonicalQuery(query), canonical, query);
  const signer = new VerifyingKey(fromHex(wire.signer));
  for (const r of wire.requests) {
    const nonce = r.headers[NONCE_HEADER];
    const message = await requestMessage(r.method, signedPath(r.path), r.query, fromHex(r.body), r.timestamp, nonce, r.device_id);
    assert.equal(toHex(message), r.message);
    await signer.verify(b64decode(r.headers[SIGNATURE_HEADER]), message);
  }
  const m = wire.messages;
  assert.equal(await deviceId(signer.bytes()), m.device_id);
  const post = m.post_inputs;
  assert.equal(toHex(postMessage(post.room, fromHex(post.post_id), post.kind, m.device_id, post.timestamp, fromHex(post.body))), m.post);
  assert.equal(toHex(helloMessage("m-1", "board", fromHex(m.challenge), m.device_id)), m.hello);
  assert.equal(toHex(meetingProofMessage("key", "m-1", "alice", 2n ** 40n, Uint8Array.of(1, 2))), m.group_proof);
  const cert = deviceCertificateMessage("alice", m.device_id, new Uint8Array(50).fill(1), new Uint8Array(32).fill(2));
  assert.equal(toHex(cert), m.device_cert);
  const adding = deviceProofMessage(99, new Uint8Array(10).fill(3), "a.b.c", new Uint8Array(50).fill(4), new Uint8Array(32).fill(5));
  assert.equal(toHex(adding), m.device_proof);
});

test("document envelopes, streams and escrows made in Python open here", async () => {
  const { document: doc, stream, escrow } = document.envelopes;
  const key = fromHex(doc.key);
  assert.equal(toHex(await openDocument(key, doc.id, fromHex(doc.envelope))), doc.plaintext);
  await assert.rejects(openDocument(key, "other", fromHex(doc.envelope)), { name: "DecryptionError" });
  const sealed = fromHex(stream.sealed);
  const chunks: Uint8Array[] = [];
  for await (const chunk of openStream(fromHex(stream.key), stream.id, [sealed.subarray(0, 100), sealed.subarray(100)])) {
    chunks.push(chunk);
  }
  assert.equal(chunks.map(toHex).join(""), stream.plaintext);
  const cut = sealed.subarray(0, sealed.length - 116);
  await assert.rejects(
    (async () => {
      for await (const _ of openStream(fromHex(stream.key), stream.id, [cut]));
    })(),
    { name: "DecryptionError" },
  );
  const password = await splitTrustPassword(fromHex(escrow.keyserver_share), fromHex(escrow.platform_share));
  assert.equal(toHex(password), escrow.password);
  const opened = await openEscrow(fromHex(escrow.blob), password, fromHex(escrow.context));
  assert.equal(toHex(opened), escrow.secret);
  await assert.rejects(openEscrow(fromHex(escrow.blob), password, new TextEncoder().encode("bob")), { name: "DecryptionError" });
});

test("board posts parse and re-encode byte for byte; what Python refuses is refused", async () => {
  const posts = document.board;
  for (const { kind, body } of posts.posts) {
    const message = parse(kind, fromHex(body));
    assert.equal(toHex(message.bytes()), body, kind);
    if (message instanceof KeyPost || message instanceof HandOver || message instanceof End) {
      const groupKey = PublicKey.fromBytes(fromHex(posts.group_public_key));
      await message.proof.verify("key", "m-1", "alice", groupKey, new TextEncoder().encode("k"));
    }
  }
  for (const { kind, body } of posts.refused) {
    // (TooManyInvitees is a BoardMessageError too)
    assert.throws(() => parse(kind, fromHex(body)), (e) => e instanceof BoardMessageError, `${kind} ${body}`);
  }
  const key = posts.posts.map((p: { kind: string; body: string }) => p).find((p: { kind: string }) => p.kind === "key");
  const post = KeyPost.parse(fromHex(key.body));
  const [members, base, joined, left] = await KeyPost.changes(posts.changes.before, posts.changes.after);
  assert.deepEqual([toHex(members), toHex(base), joined, left], [toHex(post.membersDigest), toHex(post.baseDigest), post.joined, post.left]);
  assert.deepEqual(await post.apply(posts.changes.before), sortedByCodePoint(posts.changes.after));
  assert.equal(await post.apply(["alice"]), null);
});
