/**
 * A Janus session over Janus's WebSocket API (the `janus-protocol` subprotocol):
 * create, attach a plugin handle, send it messages (with SDP), trickle candidates,
 * keep the session alive. Small on purpose, so a page needs no third-party script;
 * it covers what the VideoRoom client uses, nothing else.
 *
 * Every request carries a transaction id; Janus answers `success` or `error` at once,
 * or `ack` now and the plugin's `event` (same transaction) later. Events without a
 * transaction (a publisher joined, a peer connection came up, a hangup) go to the
 * handle's listener, chosen by `sender`.
 */

export type Json = Record<string, unknown>;

/** Janus refused a request: its (or its plugin's) numeric code and reason. */
export class JanusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
  ) {
    super(`Janus error ${code}: ${reason}`);
  }
  override get name(): string {
    return "JanusError";
  }
}

/** A plugin's answer: its data and, where it sent one, an SDP. */
export interface PluginReply {
  readonly data: Json;
  readonly jsep?: RTCSessionDescriptionInit;
}

// `event`: the request is a plugin message, whose `ack` only says that an `event`
// with the same transaction will follow; every other request's `ack` is its answer.
type Pending = { resolve: (message: Json) => void; reject: (error: Error) => void; event: boolean };

// Janus closes a session after `session_timeout` seconds (60 by default) without a
// request; a keepalive well inside that keeps an idle page's session.
export const KEEPALIVE_MS = 20_000;
export const REPLY_MS = 15_000;

/** What the session uses of a WebSocket: the WHATWG API (a browser's `WebSocket`). */
export interface JanusSocket {
  readonly readyState: number;
  send(data: string): void;
  close(): void;
  addEventListener(
    type: "open" | "message" | "close" | "error",
    listener: (event: never) => void,
    options?: { once: boolean },
  ): void;
}
export type JanusSocketConstructor = new (url: string, protocol: string) => JanusSocket;

export interface ConnectOptions {
  /** The WebSocket class (`globalThis.WebSocket` by default; Node 20 has none). */
  readonly WebSocket?: JanusSocketConstructor;
  /** How long a request waits for Janus's answer (ms). */
  readonly replyMs?: number;
}

const OPEN = 1; // WebSocket.OPEN

export class JanusSession {
  readonly #socket: JanusSocket;
  readonly #replyMs: number;
  readonly #pending = new Map<string, Pending>();
  readonly #handles = new Map<number, JanusHandle>();
  readonly #keepalive: ReturnType<typeof setInterval>;
  #next = 0;
  id = 0;

  private constructor(socket: JanusSocket, replyMs: number) {
    this.#socket = socket;
    this.#replyMs = replyMs;
    socket.addEventListener("message", (event: { data: unknown }) => this.#receive(String(event.data)));
    socket.addEventListener("close", () => this.#fail(new JanusError(0, "the WebSocket closed")));
    this.#keepalive = setInterval(() => {
      this.#request({ janus: "keepalive", session_id: this.id }).catch(() => undefined);
    }, KEEPALIVE_MS);
  }

  /** A new session on the Janus WebSocket at `url` (e.g. `ws://127.0.0.1:8188`). */
  static async connect(url: string, options: ConnectOptions = {}): Promise<JanusSession> {
    const Socket = options.WebSocket ?? (globalThis.WebSocket as unknown as JanusSocketConstructor);
    const socket = new Socket(url, "janus-protocol");
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener("open", () => resolve(), { once: true });
      socket.addEventListener("error", () => reject(new JanusError(0, `cannot reach ${url}`)), { once: true });
    });
    const session = new JanusSession(socket, options.replyMs ?? REPLY_MS);
    const created = await session.#request({ janus: "create" });
    session.id = Number((created.data as Json).id);
    return session;
  }

  /** A handle on `plugin` (e.g. `janus.plugin.videoroom`) in this session. */
  async attach(plugin: string): Promise<JanusHandle> {
    const attached = await this.#request({ janus: "attach", plugin, session_id: this.id });
    const handle = new JanusHandle(this, Number((attached.data as Json).id));
    this.#handles.set(handle.id, handle);
    return handle;
  }

  /** Ends the session (Janus detaches its handles and hangs up their peer connections). */
  async destroy(): Promise<void> {
    clearInterval(this.#keepalive);
    if (this.#socket.readyState === OPEN) {
      await this.#request({ janus: "destroy", session_id: this.id }).catch(() => undefined);
      this.#socket.close();
    }
  }

  /** @internal One request; resolves with Janus's final reply to it. */
  request(message: Json, event = false): Promise<Json> {
    return this.#request(message, event);
  }

  /** @internal */
  forget(handle: JanusHandle): void {
    this.#handles.delete(handle.id);
  }

  #request(message: Json, event = false): Promise<Json> {
    const transaction = `t${++this.#next}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(transaction);
        reject(new JanusError(0, `no reply to ${String(message.janus)} within ${this.#replyMs} ms`));
      }, this.#replyMs);
      this.#pending.set(transaction, {
        resolve: (reply) => (clearTimeout(timer), resolve(reply)),
        reject: (error) => (clearTimeout(timer), reject(error)),
        event,
      });
      this.#socket.send(JSON.stringify({ ...message, transaction }));
    });
  }

  #receive(text: string): void {
    const message = JSON.parse(text) as Json;
    const transaction = typeof message.transaction === "string" ? message.transaction : undefined;
    const pending = transaction === undefined ? undefined : this.#pending.get(transaction);
    if (pending !== undefined && transaction !== undefined) {
      if (message.janus === "ack" && pending.event) return;
      this.#pending.delete(transaction);
      const error = message.error as { code: number; reason: string } | undefined;
      if (message.janus === "error" && error !== undefined) {
        pending.reject(new JanusError(error.code, error.reason));
      } else {
        pending.resolve(message);
      }
      return;
    }
    const sender = typeof message.sender === "number" ? message.sender : undefined;
    if (sender !== undefined) this.#handles.get(sender)?.deliver(message);
  }

  #fail(error: Error): void {
    clearInterval(this.#keepalive);
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
  }
}

/** One plugin handle: messages to the plugin, candidates for its peer connection. */
export class JanusHandle {
  #listener: (message: Json) => void = () => undefined;

  constructor(
    readonly session: JanusSession,
    readonly id: number,
  ) {}

  /** Receives the handle's events that answer no request of ours. */
  onEvent(listener: (message: Json) => void): void {
    this.#listener = listener;
  }

  /** A message to the plugin; its reply, or `JanusError` for its (or Janus's) refusal. */
  async send(body: Json, jsep?: RTCSessionDescriptionInit): Promise<PluginReply> {
    const message: Json = { janus: "message", session_id: this.session.id, handle_id: this.id, body };
    if (jsep !== undefined) message.jsep = jsep;
    const reply = await this.session.request(message, true);
    const data = ((reply.plugindata as Json | undefined)?.data ?? {}) as Json;
    if (typeof data.error_code === "number") throw new JanusError(data.error_code, String(data.error));
    const answer = reply.jsep as RTCSessionDescriptionInit | undefined;
    return answer === undefined ? { data } : { data, jsep: answer };
  }

  /** A local ICE candidate for this handle's peer connection (null: gathering ended). */
  async trickle(candidate: RTCIceCandidate | null): Promise<void> {
    const payload = candidate === null ? { completed: true } : candidate.toJSON();
    await this.session.request({
      janus: "trickle",
      session_id: this.session.id,
      handle_id: this.id,
      candidate: payload,
    });
  }

  /** Detaches the handle (Janus hangs up its peer connection). */
  async detach(): Promise<void> {
    this.session.forget(this);
    await this.session
      .request({ janus: "detach", session_id: this.session.id, handle_id: this.id })
      .catch(() => undefined);
  }

  /** @internal */
  deliver(message: Json): void {
    this.#listener(message);
  }
}
