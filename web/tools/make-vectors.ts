/**
 * Prints a vector document made by this SDK (the shape of `python -m veil.vectors
 * make`'s), for `python -m veil.vectors check` to check entry by entry.
 */

import { toHex } from "../src/crypto/encoding.js";
import * as pg from "../src/crypto/pairing.js";
import { seal } from "../src/crypto/chat.js";
import { Plaintext, PrivateKey, encrypt, generateTransformKey } from "../src/crypto/pre.js";
import { SENDER_LIMIT, chatKey, mediaKid, senderBaseKey, sessionKey } from "../src/crypto/schedule.js";
import { sign } from "../src/crypto/schnorr.js";
import { SFrameSender } from "../src/crypto/sframe.js";
import { SigningKey } from "../src/crypto/signing.js";
import { memberDigest, securityCode } from "../src/protocol/members.js";

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
  };
  process.stdout.write(`${JSON.stringify(document, null, 1)}\n`);
}

await main();
