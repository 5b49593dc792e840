/** The board over a real `veil serve`: hello, signed posts, acks, resume, refusals. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { CONFERENCE_AUDIENCE } from "../../src/protocol/wire.js";
import { Announce, Chat } from "../../src/protocol/board.js";
import { InvalidRequest, Unauthorized, Unavailable } from "../../src/client/index.js";
import { fresh, initialize, skip, tokensFor } from "./services.js";

test("two Node devices post on a board and read each other's verified posts in order", { skip }, async () => {
  const ann = await initialize(fresh("bann"));
  const bob = await initialize(fresh("bbob"));
  const room = fresh("room");
  const states: string[] = [];
  const a = ann.board(room, { onState: (state) => states.push(state) });
  const b = bob.board(room);
  const late = ann.board(room);
  try {
    await a.connect();
    await b.connect();
    const first = await a.post(Announce.KIND, new Announce(1n).bytes());
    const second = await b.post(Announce.KIND, new Announce(2n).bytes());
    assert.ok(second > first);
    for (const board of [a, b]) {
      const one = await board.next(10);
      const two = await board.next(10);
      assert.deepEqual([one.userId, one.seq, Announce.parse(one.body).sender], [ann.userId, first, 1n]);
      assert.deepEqual([two.userId, two.seq, Announce.parse(two.body).sender], [bob.userId, second, 2n]);
      assert.equal(board.rejected, 0);
    }
    // A late reader resumes from a sequence number: only what came after it.
    await late.connect(first);
    assert.equal((await late.next(10)).seq, second);
    // The board refuses a malformed body by name, and the board stays usable.
    await assert.rejects(a.post(Chat.KIND, new TextEncoder().encode("not json")), InvalidRequest);
    assert.ok((await a.post(Announce.KIND, new Announce(3n).bytes())) > second);
  } finally {
    await Promise.all([a.close(), b.close(), late.close()]);
  }
  assert.deepEqual(states, ["connected", "closed"]);
});

test("a board hello with a token that does not verify is refused by name (4401)", { skip }, async () => {
  const sub = fresh("btok");
  const good = tokensFor(sub);
  const device = await initialize(sub, {
    mode: "password", // split trust would ask the conference service for its share first
    password: async () => "a password",
    tokens: async (audience) => (audience === CONFERENCE_AUDIENCE ? "not-a-token" : good(audience)),
  });
  const board = device.board(fresh("room"));
  await assert.rejects(board.connect(), Unauthorized);
  await board.close();
});

test("a post that times out, is given up or meets close() while it is being signed rejects its caller and nothing else", { skip }, async () => {
  const ann = await initialize(fresh("uann"));
  const board = ann.board(fresh("room"));
  const unhandled: unknown[] = [];
  const record = (reason: unknown): void => void unhandled.push(reason);
  process.on("unhandledRejection", record);
  try {
    await board.connect();
    // A 0 s timeout fires while the post is still being signed (an await).
    await assert.rejects(board.post(Announce.KIND, new Announce(1n).bytes(), { timeout: 0 }), (e: Error) => e instanceof Unavailable && e.code === "post_timeout");
    const controller = new AbortController();
    const given = board.post(Announce.KIND, new Announce(2n).bytes(), { signal: controller.signal });
    controller.abort(new Error("given up"));
    await assert.rejects(given, /given up/);
    const closing = board.post(Announce.KIND, new Announce(3n).bytes());
    await board.close();
    await assert.rejects(closing);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(unhandled.map(String), []);
  } finally {
    process.off("unhandledRejection", record);
    await board.close();
  }
});
