/** Streamed documents and the artifact helpers against a real `veil serve`, as
 * tests/client/test_documents.py checks the Python SDK's. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { concat } from "../../src/crypto/encoding.js";
import { DecryptionError } from "../../src/crypto/errors.js";
import { Plaintext, encrypt } from "../../src/crypto/pre.js";
import { type Documents, NotMember, UntrustedKey } from "../../src/client/index.js";
import { b64decode, b64encode } from "../../src/protocol/wire.js";
import { fresh, initialize, skip } from "./services.js";

const encoder = new TextEncoder();

function flip(data: Uint8Array, index = data.length - 1): Uint8Array {
  const altered = Uint8Array.from(data);
  altered[index]! ^= 1;
  return altered;
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const all: Uint8Array[] = [];
  for await (const chunk of chunks) all.push(chunk);
  return all;
}

/** The stream's plaintext, read through to its end. */
async function read(documents: Documents, documentId: string, segments: Iterable<Uint8Array> | AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  return concat(await collect(await documents.decryptStream(documentId, segments)));
}

/** Plaintext chunks from an async generator, as a recorder would hand them over. */
async function* recorded(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const chunk of chunks) yield chunk;
}

test("a stream is sealed as it is read and opened, in any piece sizes, by the user and a grantee", { skip }, async () => {
  const ann = await initialize(fresh("sta"));
  const bob = await initialize(fresh("stb"));
  const chunks = [50_000, 50_000, 50_000, 50_000].map((n) => crypto.getRandomValues(new Uint8Array(n)));
  const plaintext = concat(chunks);
  const stream = await ann.documents.encryptStream(recorded(chunks), { users: [bob.userId] });
  assert.equal(stream.kind, "recording");
  assert.match(stream.documentId, /^recording-[0-9a-f]{24}$/);
  assert.deepEqual(JSON.parse(JSON.stringify(stream)), { documentId: stream.documentId, kind: "recording" });
  const sealed = await collect(stream.segments);
  assert.equal(sealed.length, 5); // a header, then 64 KiB segments: 200,000 bytes in 4
  assert.deepEqual(await read(bob.documents, stream.documentId, sealed), plaintext);
  assert.deepEqual(await read(ann.documents, stream.documentId, recorded(sealed)), plaintext); // keepAccess
  // The same bytes, cut at other places than segment borders (as a download arrives).
  const whole = concat(sealed);
  const pieces = [1, 7, 4000, 70_000, 100_000, whole.length].map((end, i, ends) => whole.subarray(i ? ends[i - 1]! : 0, end));
  assert.deepEqual(await read(bob.documents, stream.documentId, pieces), plaintext);
  // An empty stream is a header and one (empty, last) segment.
  const empty = await ann.documents.encryptStream([]);
  assert.deepEqual(await read(ann.documents, empty.documentId, await collect(empty.segments)), new Uint8Array());
});

test("a cut, reordered, altered or moved stream fails as DecryptionError; a non-member is NotMember", { skip }, async () => {
  const ann = await initialize(fresh("stc"));
  const bob = await initialize(fresh("std"));
  const eve = await initialize(fresh("ste"));
  const chunks = [50_000, 50_000, 50_000].map((n) => crypto.getRandomValues(new Uint8Array(n)));
  const stream = await ann.documents.encryptStream(chunks, { users: [bob.userId], kind: "file" });
  const sealed = await collect(stream.segments);
  assert.equal(sealed.length, 4);
  const [head, first, second, last] = sealed as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  const broken: [string, Uint8Array[]][] = [
    ["cut before its last segment", [head, first, second]],
    ["cut to its header", [head]],
    ["cut inside its header", [head.subarray(0, 5)]],
    ["empty", []],
    ["reordered", [head, second, first, last]],
    ["a segment dropped", [head, first, last]],
    ["a segment repeated", [head, first, first, second, last]],
    ["extended past its last segment", [head, first, second, last, last]],
    ["an altered version byte", [flip(head, 0), first, second, last]],
    ["an altered document id", [flip(head, 5), first, second, last]],
    ["an altered chunk size", [flip(head, head.length - 8), first, second, last]],
    ["an altered nonce prefix", [flip(head), first, second, last]],
    ["an altered segment", [head, first, flip(second), last]],
    ["an altered last segment", [head, first, second, flip(last, 0)]],
  ];
  for (const [why, segments] of broken) {
    await assert.rejects(read(bob.documents, stream.documentId, segments), DecryptionError, why);
  }
  // Chunks before a cut are yielded (each authenticated); the failure comes at the end,
  // where the segment held back as maybe the last one is not sealed as the last.
  const opened = await bob.documents.decryptStream(stream.documentId, [head, first, second]);
  assert.equal((await opened.next()).value?.length, 64 * 1024);
  await assert.rejects(opened.next(), DecryptionError);
  // Another document's key does not open it (the id is in every segment's AAD).
  const other = await ann.documents.encryptStream([encoder.encode("other")], { users: [bob.userId] });
  await collect(other.segments);
  await assert.rejects(read(bob.documents, other.documentId, sealed), DecryptionError);
  // Not eve's document, and no grant reaches eve: refused before a segment is read.
  await assert.rejects(bob.documents.decryptStream(stream.documentId, sealed, { author: eve.userId }), UntrustedKey);
  await assert.rejects(eve.documents.decryptStream(stream.documentId, sealed), NotMember);
});

test("named helpers: a transcript, a recording and a shared file, each of its kind", { skip }, async () => {
  const ann = await initialize(fresh("sth"));
  const bob = await initialize(fresh("sti"));
  const transcript = await ann.documents.saveTranscript(encoder.encode("ann: hello"), { users: [bob.userId] });
  const file = await ann.documents.shareFile(encoder.encode("slides"), { users: [bob.userId] });
  const recording = await ann.documents.saveRecording([encoder.encode("frames")], { users: [bob.userId] });
  assert.deepEqual([transcript.kind, file.kind, recording.kind], ["transcript", "file", "recording"]);
  assert.deepEqual(await bob.documents.decrypt(transcript, { author: ann.userId }), encoder.encode("ann: hello"));
  assert.deepEqual(await ann.documents.decrypt(file), encoder.encode("slides"));
  assert.deepEqual(await read(bob.documents, recording.documentId, await collect(recording.segments)), encoder.encode("frames"));
});

test("an abuse report reaches the safety team only: not even its reporter reads it", { skip }, async () => {
  const lead = await initialize(fresh("sfl"));
  const member = await initialize(fresh("sfm"));
  const reporter = await initialize(fresh("rep"));
  const bystander = await initialize(fresh("bys"));
  const team = await lead.groups.create(undefined, { members: [member.userId] });
  const evidence = encoder.encode("chat log and a frame of the offending video");
  const report = await reporter.documents.reportAbuse(evidence, { safetyTeam: team });
  assert.equal(report.kind, "abuse_report");
  assert.deepEqual(await member.documents.decrypt(report, { author: reporter.userId }), evidence);
  for (const outsider of [reporter, bystander]) {
    await assert.rejects(outsider.documents.decrypt(report), (error: unknown) => error instanceof NotMember && error.code === "no_access");
  }
  // The reporter owns the document but cannot pass it on: granting needs its key.
  await assert.rejects(reporter.documents.grant(report.documentId, { users: [bystander.userId] }), NotMember);
  await assert.rejects(bystander.documents.decrypt(report), NotMember);
});

type Answer = Record<string, unknown>;

/** A fetch that passes the key service's answer for a document's key through `change`
 * (what a key service lying about a key's provenance would send), when one is set. */
function lyingKeyService(): { fetch: typeof fetch; change: ((answer: Answer) => Promise<void>) | null; changed: number } {
  const state = {
    change: null as ((answer: Answer) => Promise<void>) | null,
    changed: 0,
    fetch: async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const response = await fetch(input, init);
      const url = String(input instanceof Request ? input.url : input);
      if (state.change === null || !/\/v1\/documents\/[^/]+\/key$/.test(new URL(url).pathname) || !response.ok) return response;
      const answer = (await response.json()) as Answer;
      await state.change(answer);
      state.changed += 1;
      return new Response(JSON.stringify(answer), { status: 200, headers: { "content-type": "application/json" } });
    },
  };
  return state;
}

test("a document key whose provenance does not hold is UntrustedKey, and nothing is decrypted", { skip }, async () => {
  const ann = await initialize(fresh("pva"));
  const eve = await initialize(fresh("pve"));
  const service = lyingKeyService();
  const bob = await initialize(fresh("pvb"), { fetch: service.fetch });
  const document = await ann.documents.encrypt(encoder.encode("for bob"), { users: [bob.userId] });
  const eveRecord = await eve.keyserver.deviceRecord(eve.deviceId);
  const author = (answer: Answer): Answer => answer["author"] as Answer;
  const lies: [string, RegExp, (answer: Answer) => Promise<void>][] = [
    ["an author without a certificate", /did not certify/, async (a) => void (author(a)["certificate"] = null)],
    [
      "an author whose certificate is altered", /did not certify/,
      async (a) => {
        const certificate = b64decode(author(a)["certificate"] as string);
        certificate[certificate.length - 1]! ^= 1;
        author(a)["certificate"] = b64encode(certificate);
      },
    ],
    ["an author whose certificate is another device's", /did not certify/, async (a) => void (author(a)["certificate"] = b64encode(eveRecord.certificate!))],
    ["another user's (certified) device as the author", /who may not make it/, async (a) => {
      Object.assign(author(a), { device_id: eveRecord.deviceId, user_id: eveRecord.userId, public_key: b64encode(eveRecord.publicKey.bytes()), signing_key: b64encode(eveRecord.signingKey.bytes()), certificate: b64encode(eveRecord.certificate!) });
    }],
    ["no author", /names no certified author/, async (a) => void (a["author"] = null)],
    ["no owner", /names no owner/, async (a) => void delete a["owner"]],
    // The key service re-signs: an origin of its choosing, signed by another device.
    ["an origin re-signed by another device", /not signed by its author/, async (a) => {
      a["origin"] = b64encode((await encrypt(Plaintext.generate(), bob.masterPublicKey, eve.signer)).bytes());
    }],
    ["an origin the delivered key does not descend from", /does not descend from its origin/, async (a) => {
      a["origin"] = b64encode((await encrypt(Plaintext.generate(), bob.masterPublicKey, ann.signer)).bytes());
    }],
    ["a delivered key not signed by the transform signer", /not signed by the key service's transform signer/, async (a) => {
      const raw = b64decode(a["encrypted_key"] as string);
      raw[raw.length - 1]! ^= 1;
      a["encrypted_key"] = b64encode(raw);
    }],
  ];
  for (const [lie, reason, change] of lies) {
    service.change = change;
    await assert.rejects(bob.documents.decrypt(document), (error: unknown) => error instanceof UntrustedKey && reason.test(error.message), lie);
  }
  assert.equal(service.changed, lies.length); // each refusal was of a changed answer
  service.change = null;
  assert.deepEqual(await bob.documents.decrypt(document), encoder.encode("for bob")); // the honest answer still opens
});
