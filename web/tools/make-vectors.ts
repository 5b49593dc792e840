/**
 * Prints a vector document made by this SDK (the shape of `python -m veil.vectors
 * make`'s), for `python -m veil.vectors check` to check entry by entry.
 */

import { toHex } from "../src/crypto/encoding.js";
import * as pg from "../src/crypto/pairing.js";
import { generateKey, sealDocument, sealStream } from "../src/crypto/aead.js";
import { seal } from "../src/crypto/chat.js";
import { newShare, sealEscrow, splitTrustPassword } from "../src/crypto/escrow.js";
import { Plaintext, PrivateKey, encrypt, generateTransformKey } from "../src/crypto/pre.js";
import { SENDER_LIMIT, chatKey, mediaKid, senderBaseKey, sessionKey } from "../src/crypto/schedule.js";
import { sign } from "../src/crypto/schnorr.js";
import { SFrameSender } from "../src/crypto/sframe.js";
import { SigningKey } from "../src/crypto/signing.js";
import { Alive, Announce, Chat, End, HandOver, KeyPost, Leave, MeetingProof } from "../src/protocol/board.js";
import { memberDigest, securityCode } from "../src/protocol/members.js";
import {
  NONCE_HEADER,
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
  signRequest,
  signedPath,
} from "../src/protocol/wire.js";

function scalars(): bigint[] {
  return [1n, 2n, pg.R - 1n, pg.randomScalar(), pg.randomScalar(), pg.randomScalar()];
}

function hex32(n: bigint): string {
  return toHex(pg.bigintToBytes(n, 32));
}

async function pre(): Promise<unknown> {
  const [group, user, device] = [PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()];
  const author = await SigningKey.generate();
  const plaintext = Plaintext.generate();
  const keys = [
    await generateTransformKey(group, user.publicKey, author),
    await generateTransformKey(user, device.publicKey, author),
  ];
  const level0 = await encrypt(plaintext, group.publicKey, author);
  const tampered = level0.bytes();
  tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
  return {
    chains: [
      {
        keys: [group, user, device].map((k) => toHex(k.toSecretBytes())),
        public_keys: [group, user, device].map((k) => toHex(k.publicKey.bytes())),
        plaintext: toHex(plaintext.toSecretBytes()),
        author: toHex(author.verifyingKey.bytes()),
        levels: [toHex(level0.bytes())], // this SDK does not transform: Python does
        transform_keys: keys.map((k) => toHex(k.bytes())),
      },
    ],
    refused: [{ kind: "ciphertext", bytes: toHex(tampered), error: "InvalidSignature" }],
  };
}

async function schnorr(): Promise<unknown[]> {
  const entries = [];
  for (const message of [new Uint8Array(), new TextEncoder().encode("veil/v1 proof")]) {
    const key = PrivateKey.generate();
    entries.push({
      key: toHex(key.toSecretBytes()),
      public_key: toHex(key.publicKey.bytes()),
      message: toHex(message),
      signature: toHex((await sign(message, key)).bytes()),
    });
  }
  return entries;
}

async function frames(base: Uint8Array, kid: bigint, meetingId: string): Promise<unknown[]> {
  const sender = await SFrameSender.create(kid, base);
  const payloads = [new Uint8Array(), new Uint8Array(7), crypto.getRandomValues(new Uint8Array(1200))];
  const metadata = new TextEncoder().encode(meetingId);
  const out = [];
  for (const payload of payloads) {
    out.push({ payload: toHex(payload), frame: toHex(await sender.protect(payload, metadata)) });
  }
  return out;
}

async function meeting(): Promise<unknown> {
  const plaintext = Plaintext.generate();
  const meetingId = `m-web-${toHex(crypto.getRandomValues(new Uint8Array(4)))}`;
  const [epoch, sender, stream] = [2n ** 33n + 7n, SENDER_LIMIT - 2n, 5];
  const session = await sessionKey(plaintext, meetingId, epoch);
  const text = new TextEncoder().encode("hello from the browser SDK ✓");
  const lists = [["alice"], ["carol", "bob"], ["ünïcode", "auth0~7C9", "\u{1f600}x", "z"]];
  return {
    schedule: {
      plaintext: toHex(plaintext.toSecretBytes()),
      meeting_id: meetingId,
      epoch: epoch.toString(),
      sender: sender.toString(),
      stream,
      session_key: toHex(session),
      base_key: toHex(await senderBaseKey(session, meetingId, epoch, sender, stream)),
      chat_key: toHex(await chatKey(session, meetingId, epoch)),
      kid: mediaKid(epoch, sender, stream).toString(),
      frames: await frames(await senderBaseKey(session, meetingId, epoch, sender, stream), mediaKid(epoch, sender, stream), meetingId),
      chat: { text: toHex(text), sealed: toHex(await seal(session, text, meetingId, epoch, sender)) },
    },
    members: await Promise.all(
      lists.map(async (members) => ({
        members,
        digest: toHex(await memberDigest(members)),
        code: await securityCode(session, epoch, members),
      })),
    ),
  };
}

const QUERIES = ["", "b=2&a=1", "x=a+b&y=%2F%20z", "k", "e=%C3%A9&%E2%9C%93=1", "&&a=1&", "z=~._-*'()!"];
const IDS = ["alice", ".", "..", "a/b", "é ü", "x%2Fy"];

async function wire(): Promise<unknown> {
  const signer = await SigningKey.generate();
  const device = await deviceId(signer.verifyingKey.bytes());
  const requests: unknown[] = [];
  for (const [method, path, query, body] of [
    ["POST", "/v1/transform", "", '{"encrypted_key":"AQ"}'],
    ["GET", `/v1/groups/${pathSegment("é ü")}/digest`, "", ""],
    ["DELETE", "/v1/groups/g1/members/bob", "timestamp=17&proof=AQ", ""],
  ] as const) {
    const timestamp: number = 1_733_400_000 + requests.length;
    const raw = new TextEncoder().encode(body);
    const headers = await signRequest(signer, device, method, signedPath(path), query, raw, timestamp);
    const message = await requestMessage(method, signedPath(path), query, raw, timestamp, headers[NONCE_HEADER] ?? "", device);
    requests.push({ method, path, query, body: toHex(raw), timestamp, device_id: device, headers, message: toHex(message) });
  }
  const postId = crypto.getRandomValues(new Uint8Array(16));
  const challenge = crypto.getRandomValues(new Uint8Array(32));
  return {
    b64: [new Uint8Array(), Uint8Array.of(255), crypto.getRandomValues(new Uint8Array(31))].map((b) => ({
      bytes: toHex(b),
      text: b64encode(b),
    })),
    path_segments: IDS.map((id) => ({ id, segment: pathSegment(id) })),
    queries: QUERIES.map((query) => ({ query, canonical: canonicalQuery(query) })),
    signer: toHex(signer.verifyingKey.bytes()),
    requests,
    messages: {
      device_id: device,
      post: toHex(postMessage("m-1", postId, "key", device, 17, new TextEncoder().encode("{}"))),
      post_inputs: { room: "m-1", post_id: toHex(postId), kind: "key", timestamp: 17, body: "7b7d" },
      hello: toHex(helloMessage("m-1", "board", challenge, device)),
      challenge: toHex(challenge),
      group_proof: toHex(meetingProofMessage("key", "m-1", "alice", 2n ** 40n, Uint8Array.of(1, 2))),
      device_cert: toHex(deviceCertificateMessage("alice", device, new Uint8Array(50).fill(1), new Uint8Array(32).fill(2))),
      device_proof: toHex(
        deviceProofMessage(99, new Uint8Array(10).fill(3), "a.b.c", new Uint8Array(50).fill(4), new Uint8Array(32).fill(5)),
      ),
    },
  };
}

async function envelopes(): Promise<unknown> {
  const [key, streamKey] = [generateKey(), generateKey()];
  const text = new TextEncoder().encode("a transcript from the browser ✓");
  const longText = crypto.getRandomValues(new Uint8Array(2 * 1024 + 500));
  const segments: Uint8Array[] = [];
  for await (const piece of sealStream(streamKey, "rec-web", [longText.subarray(0, 700), longText.subarray(700)], 1024)) {
    segments.push(piece);
  }
  const [ksShare, platformShare] = [newShare(), newShare()];
  const password = await splitTrustPassword(ksShare, platformShare);
  const secret = crypto.getRandomValues(new Uint8Array(32));
  const context = new TextEncoder().encode("alice");
  return {
    document: { key: toHex(key), id: "doc-é", plaintext: toHex(text), envelope: toHex(await sealDocument(key, "doc-é", text)) },
    stream: { key: toHex(streamKey), id: "rec-web", plaintext: toHex(longText), sealed: segments.map(toHex).join("") },
    escrow: {
      keyserver_share: toHex(ksShare),
      platform_share: toHex(platformShare),
      password: toHex(password),
      secret: toHex(secret),
      context: toHex(context),
      blob: toHex(await sealEscrow(secret, password, context)),
    },
  };
}

async function board(): Promise<unknown> {
  const group = PrivateKey.generate();
  const proof = await MeetingProof.make("key", "m-1", "alice", 2n ** 40n, group, new TextEncoder().encode("k"));
  const before = ["alice", "bob", "zoë"];
  const after = ["alice", "carol", "zoë", "ü\u{1f600}"];
  const changes = await KeyPost.changes(before, after);
  const messages = [
    new Announce(2n ** 44n - 1n),
    new Leave(0n),
    new KeyPost(2n ** 63n, new Uint8Array([107]), ...changes, ["dave"], "alice", proof),
    new HandOver(17n, proof),
    new End(proof),
    new Chat(3n, 4n, new TextEncoder().encode("sealed")),
    new Alive(5n, null),
    new Alive(6n, 7n),
  ];
  return {
    group_public_key: toHex(group.publicKey.bytes()),
    changes: { before, after },
    posts: messages.map((m) => ({ kind: m.kind, body: toHex(m.bytes()) })),
    refused: [
      { kind: "chat", body: toHex(new TextEncoder().encode('{"epoch": 3,"sealed":"AA","sender":4}')) },
      { kind: "announce", body: toHex(new TextEncoder().encode('{"sender":-1}')) },
    ],
  };
}

async function main(): Promise<void> {
  const ks = scalars();
  const messages = [new Uint8Array(), new TextEncoder().encode("veil"), crypto.getRandomValues(new Uint8Array(100))];
  const document = {
    format: "veil-vectors/1",
    made_by: "web",
    pairing: {
      g1: ks.map((k) => ({ scalar: hex32(k), point: toHex(pg.encodeG1(pg.P.multiply(k))) })),
      g2: ks.map((k) => ({ scalar: hex32(k), point: toHex(pg.encodeG2(pg.Q.multiply(k))) })),
      gt: ks.map((k) => {
        const x = pg.powSecret(pg.GT_GENERATOR, k);
        return { scalar: hex32(k), full: toHex(pg.encodeGt(x)), compressed: toHex(pg.compressGt(x)) };
      }),
      hash_to_g2: messages.map((m) => ({ message: toHex(m), point: toHex(pg.encodeG2(pg.hashToG2(m))) })),
      refused: [
        { kind: "g1", bytes: toHex(new Uint8Array(47)), error: "InvalidLength" },
        { kind: "gt", bytes: toHex(new Uint8Array(288)), error: "IdentityElement" },
      ],
    },
    pre: await pre(),
    schnorr: await schnorr(),
    meeting: await meeting(),
    wire: await wire(),
    envelopes: await envelopes(),
    board: await board(),
  };
  process.stdout.write(`${JSON.stringify(document, null, 1)}\n`);
}

await main();
