/** The Janus session's request/answer rules, against a scripted Janus on a fake socket:
 * a plugin message waits past its `ack` for its `event`, events without a transaction
 * reach their handle, refusals are `JanusError`s with Janus's (or the plugin's) code, an
 * unanswered request times out, and a closed socket fails whatever still waits. */

import assert from "node:assert/strict";
import { test } from "node:test";

import { type Json, JanusError, JanusSession, type JanusSocket } from "../src/sfu/janus.js";

type Listener = (event?: { data: unknown }) => void;

/** A socket whose Janus is `answer`: it gets each request and the socket to reply on. */
function fakeJanus(answer: (request: Json, socket: FakeSocket) => void, opens = true) {
  return class extends FakeSocket {
    constructor(url: string, protocol: string) {
      super(url, protocol, answer, opens);
    }
  };
}

class FakeSocket implements JanusSocket {
  static last: FakeSocket | undefined;
  readyState = 0;
  readonly sent: Json[] = [];
  readonly #listeners = new Map<string, Listener[]>();

  constructor(
    readonly url: string,
    readonly protocol: string,
    readonly answer: (request: Json, socket: FakeSocket) => void,
    opens: boolean,
  ) {
    FakeSocket.last = this;
    setTimeout(() => {
      this.readyState = opens ? 1 : 3;
      this.#emit(opens ? "open" : "error");
    });
  }

  send(data: string): void {
    const request = JSON.parse(data) as Json;
    this.sent.push(request);
    this.answer(request, this);
  }

  close(): void {
    this.readyState = 3;
    this.#emit("close");
  }

  addEventListener(type: string, listener: (event: never) => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener as Listener]);
  }

  /** A message from Janus, delivered asynchronously as a socket would. */
  push(message: Json): void {
    setTimeout(() => this.#emit("message", { data: JSON.stringify(message) }));
  }

  #emit(type: string, event?: { data: unknown }): void {
    for (const listener of this.#listeners.get(type) ?? []) listener(event);
  }
}

/** Janus's answers to the core requests; `plugin` answers plugin messages. */
function janus(plugin: (request: Json, socket: FakeSocket) => void) {
  return (request: Json, socket: FakeSocket): void => {
    const { transaction } = request;
    switch (request.janus) {
      case "create":
        return socket.push({ janus: "success", transaction, data: { id: 11 } });
      case "attach":
        return socket.push({ janus: "success", transaction, session_id: 11, data: { id: 22 } });
      case "keepalive":
      case "trickle":
        return socket.push({ janus: "ack", transaction, session_id: 11 });
      case "destroy":
        return socket.push({ janus: "success", transaction, session_id: 11 });
      case "message":
        return plugin(request, socket);
    }
  };
}

const OFFER = { type: "offer", sdp: "v=0\r\n" } as const;

test("a plugin message waits past its ack for its event; other events reach their handle", async () => {
  const WebSocket = fakeJanus(
    janus((request, socket) => {
      const { transaction } = request;
      socket.push({ janus: "ack", transaction, session_id: 11 });
      setTimeout(() => {
        // An event for the handle that answers nothing, then the answer.
        socket.push({ janus: "event", sender: 22, plugindata: { data: { publishers: [{ id: 5 }] } } });
        socket.push({ janus: "event", transaction, sender: 22, plugindata: { data: { joined: 1 } }, jsep: OFFER });
      }, 5);
    }),
  );
  const session = await JanusSession.connect("ws://janus", { WebSocket });
  assert.equal(FakeSocket.last?.protocol, "janus-protocol");
  assert.equal(session.id, 11);
  const handle = await session.attach("janus.plugin.videoroom");
  assert.equal(handle.id, 22);
  const events: Json[] = [];
  handle.onEvent((message) => events.push(message));
  const reply = await handle.send({ request: "join" });
  assert.deepEqual(reply, { data: { joined: 1 }, jsep: OFFER });
  assert.deepEqual(events.map((event) => (event.plugindata as Json).data), [{ publishers: [{ id: 5 }] }]);
  const sent = FakeSocket.last?.sent.find((request) => request.janus === "message");
  assert.deepEqual(sent?.body, { request: "join" });
  assert.equal(sent?.session_id, 11);
  assert.equal(sent?.handle_id, 22);
  await handle.trickle(null); // an ack is a trickle's whole answer
  assert.deepEqual(FakeSocket.last?.sent.at(-1)?.candidate, { completed: true });
  await session.destroy();
  assert.equal(FakeSocket.last?.readyState, 3);
});

test("refusals are JanusErrors with the code; silence times out; a closed socket fails waiters", async () => {
  const WebSocket = fakeJanus(
    janus((request, socket) => {
      const { transaction } = request;
      const body = request.body as Json;
      if (body.request === "refused") {
        socket.push({ janus: "error", transaction, error: { code: 458, reason: "No such session" } });
      } else if (body.request === "no-room") {
        socket.push({ janus: "ack", transaction });
        const data = { videoroom: "event", error_code: 426, error: "No such room (4242)" };
        socket.push({ janus: "event", transaction, sender: 22, plugindata: { data } });
      } else {
        socket.push({ janus: "ack", transaction }); // and nothing more
      }
    }),
  );
  const session = await JanusSession.connect("ws://janus", { WebSocket, replyMs: 50 });
  const handle = await session.attach("janus.plugin.videoroom");
  await assert.rejects(handle.send({ request: "refused" }), (error: unknown) => {
    assert.ok(error instanceof JanusError);
    assert.equal(error.name, "JanusError");
    assert.equal(error.code, 458);
    assert.equal(error.message, "Janus error 458: No such session");
    return true;
  });
  await assert.rejects(handle.send({ request: "no-room" }), { code: 426, reason: "No such room (4242)" });
  await assert.rejects(handle.send({ request: "silent" }), { message: "Janus error 0: no reply to message within 50 ms" });
  const waiting = handle.send({ request: "silent" });
  FakeSocket.last?.close();
  await assert.rejects(waiting, { message: "Janus error 0: the WebSocket closed" });
  await session.destroy();
});

test("a Janus that cannot be reached is a JanusError naming it", async () => {
  const WebSocket = fakeJanus(() => undefined, false);
  await assert.rejects(JanusSession.connect("ws://127.0.0.1:9", { WebSocket }), {
    name: "JanusError",
    message: "Janus error 0: cannot reach ws://127.0.0.1:9",
  });
});
