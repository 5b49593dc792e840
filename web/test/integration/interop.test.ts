/**
 * A Node device and a Python device (tests/web_sdk/test_sdk_node.py, the Python SDK in
 * the pytest process) exchange documents and compare safety numbers through files in
 * VEIL_INTEROP_DIR. Phase "node-first": the Node device writes a document and a
 * streamed recording to the Python user, and its safety number; phase "python-reply": a
 * new Node device of the same user reads what the Python device wrote back (and refuses
 * its stream cut or reordered).
 */

import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";

import { DecryptionError } from "../../src/crypto/errors.js";
import { EncryptedDocument, type Kind } from "../../src/client/index.js";
import { Announce } from "../../src/protocol/board.js";
import { b64decode, b64encode } from "../../src/protocol/wire.js";
import { initialize, skip } from "./services.js";

const dir = process.env["VEIL_INTEROP_DIR"] ?? "";
const nodeSub = process.env["VEIL_INTEROP_NODE_SUB"] ?? "";
const pythonUser = process.env["VEIL_INTEROP_PYTHON_USER"] ?? "";
const phase = process.env["VEIL_INTEROP_PHASE"] ?? "";
const room = process.env["VEIL_INTEROP_ROOM"] ?? "";
const why = skip || (dir && nodeSub && pythonUser ? false : "no Python device: run tests/web_sdk/test_sdk_node.py");
const encoder = new TextEncoder();

/** `length` bytes that both languages make alike (so neither sends the other its plaintext). */
function pattern(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) % 251);
}

function joined(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, part) => (out.set(part, at), at + part.length), 0);
  return out;
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const all: Uint8Array[] = [];
  for await (const chunk of chunks) all.push(chunk);
  return all;
}

test("interop: a Node device writes a document to a Python user", { skip: why || phase !== "node-first" }, async () => {
  const device = await initialize(nodeSub);
  const document = await device.documents.encrypt(encoder.encode("from node"), { users: [pythonUser], kind: "file" });
  // 150,000 bytes in uneven chunks: a header and three segments.
  const recording = pattern(150_000, 1);
  const stream = await device.documents.saveRecording([recording.subarray(0, 1000), recording.subarray(1000)], { users: [pythonUser] });
  const out = {
    node_user: device.userId,
    document_id: document.documentId,
    kind: document.kind,
    envelope: b64encode(document.envelope),
    stream_id: stream.documentId,
    segments: (await collect(stream.segments)).map(b64encode),
    safety_number: await device.safetyNumber(pythonUser),
    board_seq: 0,
  };
  // A board post for the Python device to verify against this device's certificate.
  const board = device.board(room);
  await board.connect();
  try {
    out.board_seq = await board.post(Announce.KIND, new Announce(7n).bytes());
  } finally {
    await board.close();
  }
  await writeFile(join(dir, "from-node.json"), JSON.stringify(out));
});

test("interop: a Node device reads the Python user's document", { skip: why || phase !== "python-reply" }, async () => {
  const device = await initialize(nodeSub); // a second device of the Node user
  const reply = JSON.parse(await readFile(join(dir, "from-python.json"), "utf8")) as Record<string, string>;
  const document = new EncryptedDocument(reply["document_id"]!, reply["kind"] as Kind, b64decode(reply["envelope"]!));
  assert.deepEqual(await device.documents.decrypt(document, { author: pythonUser }), encoder.encode("from python"));
  // Python's streamed recording, whole, then cut and reordered.
  const segments = (reply["segments"] as unknown as string[]).map(b64decode);
  assert.equal(segments.length, 4);
  const streamId = reply["stream_id"]!;
  const opened = await device.documents.decryptStream(streamId, segments, { author: pythonUser });
  assert.deepEqual(joined(await collect(opened)), pattern(150_000, 2));
  const [head, first, second, last] = segments as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  for (const broken of [[head, first, second], [head, second, first, last]]) {
    await assert.rejects(collect(await device.documents.decryptStream(streamId, broken)), DecryptionError);
  }
  assert.equal(await device.safetyNumber(pythonUser), reply["safety_number"]);
  // Both posts, each verified against its device's certified key, in board order.
  const board = device.board(room);
  await board.connect();
  try {
    const mine = await board.next(10);
    const theirs = await board.next(10);
    assert.deepEqual([mine.userId, Announce.parse(mine.body).sender], [device.userId, 7n]);
    assert.deepEqual([theirs.userId, Announce.parse(theirs.body).sender], [pythonUser, 9n]);
    assert.equal(board.rejected, 0);
  } finally {
    await board.close();
  }
});
