/**
 * A room's board, as `veil.client.conference.Board`: `next()` yields every verified
 * post once, in order; `post()` signs and posts one and returns its `seq`. A post is
 * delivered only if its signature verifies against its device's key as the key
 * service publishes it and its user's pinned identity key certified it, so the
 * conference service can forge or alter none (it can drop, delay or reorder them).
 *
 * After `connect()` the board reconnects with the RECONNECT backoff after any drop,
 * resumes from `lastSeq` (no post lost, none delivered twice) and resends the posts
 * not acknowledged yet (same post id, fresh timestamp and signature). A refusal that
 * retrying cannot cure ends it: `next()` raises it after the posts before it.
 */

import { InvalidSignature, VeilCryptoError } from "../crypto/errors.js";
import type { SigningKey, VerifyingKey } from "../crypto/signing.js";
import { b64decode, b64encode, pathSegment, postMessage } from "../protocol/wire.js";
import { Unavailable, VeilError, serviceError } from "./errors.js";
import type { Clock } from "./keyserver.js";
import { Link, type StateCallback } from "./link.js";
import { type Socket, type WebSocketConstructor, openSocket, wsUrl } from "./socket.js";
import { timeoutAfter } from "./timeouts.js";

/** `(deviceId, fresh)` -> its user id and signing key, certified (`Device.signerOf`). */
export type KeyLookup = (deviceId: string, fresh?: boolean) => Promise<[string, VerifyingKey]>;

/** A board post whose signature verified. */
export class Post {
  constructor(
    readonly seq: number,
    readonly kind: string,
    readonly userId: string,
    readonly deviceId: string,
    readonly timestamp: number,
    readonly body: Uint8Array,
  ) {}

  toJSON(): Record<string, string | number> {
    return { seq: this.seq, kind: this.kind, userId: this.userId, deviceId: this.deviceId };
  }
}

interface Outgoing {
  postId: Uint8Array;
  kind: string;
  body: Uint8Array;
  resolve: (seq: number) => void;
  reject: (error: Error) => void;
  done: boolean;
}

export interface BoardOptions {
  baseUrl: string;
  roomId: string;
  deviceId: string;
  signer: SigningKey;
  token: () => Promise<string>;
  lookup: KeyLookup;
  clock: Clock;
  WebSocket: WebSocketConstructor;
  onState?: StateCallback;
}

type Item = Post | Error;

export class Board {
  readonly roomId: string;
  readonly deviceId: string;
  lastSeq = 0;
  rejected = 0;
  readonly #o: BoardOptions;
  readonly #url: string;
  readonly #link: Link;
  readonly #seen = new Set<string>();
  readonly #incoming: Item[] = [];
  #waiter: (() => void) | undefined;
  readonly #pending = new Map<string, Outgoing>();
  #runner: Promise<void> | undefined;

  constructor(options: BoardOptions) {
    this.#o = options;
    this.roomId = options.roomId;
    this.deviceId = options.deviceId;
    this.#url = wsUrl(options.baseUrl, `/v1/rooms/${pathSegment(options.roomId)}/board`);
    this.#link = new Link(() => this.#open(), options.onState);
  }

  get state(): string {
    return this.#link.state;
  }

  /** Open the board (from `since`, else from `lastSeq`); raises the refusal. */
  async connect(since?: number): Promise<void> {
    if (this.#runner !== undefined) throw new Error("the board is connected already (it reconnects by itself)");
    if (since !== undefined) this.lastSeq = since;
    const socket = await this.#link.open();
    this.#runner = this.#run(socket);
  }

  async #open(): Promise<Socket> {
    return openSocket(this.#o.WebSocket, this.#url, {
      roomId: this.roomId,
      channel: "board",
      token: await this.#o.token(),
      deviceId: this.deviceId,
      signer: this.#o.signer,
      extra: { since: this.lastSeq },
    });
  }

  async #run(first: Socket): Promise<void> {
    let socket: Socket | null = first;
    while (socket !== null) {
      await this.#resend(socket);
      await this.#read(socket);
      if (this.#link.closed) return;
      socket = await this.#link.reopen();
    }
    const failure = this.#link.failure;
    if (failure !== null) {
      for (const outgoing of this.#pending.values()) this.#settle(outgoing, failure);
      this.#push(failure);
    }
  }

  /** Deliver what arrives until the connection drops. A post whose poster's key
   * cannot be had now drops the connection: the board resumes before that post. */
  async #read(socket: Socket): Promise<void> {
    try {
      for (let raw = await socket.recv(); raw !== null; raw = await socket.recv()) {
        let message: unknown;
        try {
          message = JSON.parse(raw);
        } catch {
          continue; // not a message of the protocol
        }
        if (typeof message !== "object" || message === null || Array.isArray(message)) continue;
        const m = message as Record<string, unknown>;
        const postId = typeof m["post_id"] === "string" ? m["post_id"] : undefined;
        if (m["type"] === "post") await this.#receive(m);
        else if ((m["type"] === "ack" || m["type"] === "error") && postId !== undefined && this.#pending.has(postId)) {
          this.#answer(this.#pending.get(postId)!, m);
        } else if (m["type"] === "error" && postId === undefined) {
          console.warn("the board is closing this device's connection:", String(m["code"]).slice(0, 64));
        }
      }
    } catch (error) {
      console.warn(`board of ${this.roomId}: ${(error as Error).name}; resuming`);
      socket.close();
      await socket.closed;
    }
  }

  async #receive(message: Record<string, unknown>): Promise<void> {
    const data = message["post"] as Record<string, unknown> | undefined;
    const post = await this.#verified(data);
    if (post === null || post.seq <= this.lastSeq) return;
    this.lastSeq = post.seq;
    // The service numbers posts, so it could deliver one signed post under two numbers.
    const postId = String(data!["post_id"]);
    if (this.#seen.has(postId)) {
      this.rejected += 1;
      return;
    }
    this.#seen.add(postId);
    this.#push(post);
  }

  async #verified(data: Record<string, unknown> | undefined): Promise<Post | null> {
    try {
      if (typeof data !== "object" || data === null) throw new TypeError("a post is an object");
      const [postId, body, signature] = ["post_id", "body", "signature"].map((k) => b64decode(data[k] as string));
      const { seq, kind, device_id: deviceId, timestamp } = data;
      if (typeof kind !== "string" || typeof deviceId !== "string") throw new TypeError("kind and device_id are strings");
      for (const n of [seq, timestamp]) {
        if (!Number.isSafeInteger(n) || (n as number) < 0) throw new TypeError("seq and timestamp are integers");
      }
      const message = postMessage(this.roomId, postId!, kind, deviceId, timestamp as number, body!);
      let [userId, key] = await this.#o.lookup(deviceId);
      try {
        await key.verify(signature!, message);
      } catch (error) {
        if (!(error instanceof InvalidSignature)) throw error;
        [userId, key] = await this.#o.lookup(deviceId, true); // it may have rotated its keys
        await key.verify(signature!, message);
      }
      if (userId !== data["user_id"]) throw new InvalidSignature();
      return new Post(seq as number, kind, userId, deviceId, timestamp as number, body!);
    } catch (error) {
      if (error instanceof Unavailable) throw error; // not the post's fault: read it again later
      if (error instanceof InvalidSignature || error instanceof TypeError || error instanceof RangeError || error instanceof VeilError || error instanceof VeilCryptoError) {
        // Malformed, forged, or from a device its user's pinned key did not certify.
        this.rejected += 1;
        return null;
      }
      throw error;
    }
  }

  #answer(outgoing: Outgoing, message: Record<string, unknown>): void {
    const seq = message["seq"];
    const status = message["status"];
    if (message["type"] === "ack" && Number.isSafeInteger(seq)) this.#settle(outgoing, seq as number);
    else {
      this.#settle(
        outgoing,
        serviceError(
          Number.isSafeInteger(status) ? (status as number) : 400,
          String(message["code"] ?? "bad_reply"),
          String(message["message"] ?? "the board sent a malformed reply"),
        ),
      );
    }
  }

  #settle(outgoing: Outgoing, outcome: number | Error): void {
    if (outgoing.done) return; // a resent post acknowledged twice
    outgoing.done = true;
    if (typeof outcome === "number") outgoing.resolve(outcome);
    else outgoing.reject(outcome);
  }

  #push(item: Item): void {
    this.#incoming.push(item);
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  /** Sign and post; the post's `seq` once the board stored it. Waits while the
   * connection is down and is resent after each reconnect; `Unavailable`
   * "post_timeout" after `timeout` seconds (the post may still land). Once `signal`
   * aborts, the post is given up at once with the signal's reason and no longer resent
   * (as a cancelled Python post: one already sent may still land). */
  async post(kind: string, body: Uint8Array, { timeout = 120, signal }: { timeout?: number; signal?: AbortSignal } = {}): Promise<number> {
    if (this.#link.failure !== null) throw this.#link.failure;
    if (this.#link.closed || this.#runner === undefined) throw new Error("the board is not open: connect() first");
    signal?.throwIfAborted();
    const postId = crypto.getRandomValues(new Uint8Array(16));
    const key = b64encode(postId);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let abandon: (() => void) | undefined;
    const acked = new Promise<number>((resolve, reject) => {
      const outgoing: Outgoing = { postId, kind, body: Uint8Array.from(body), resolve, reject, done: false };
      this.#pending.set(key, outgoing);
      timer = timeoutAfter(timeout, () => {
        this.#settle(
          outgoing,
          new Unavailable(0, "post_timeout", `the board did not acknowledge a ${kind} post within ${timeout} s (it may still land)`),
        );
      });
      abandon = () => this.#settle(outgoing, signal?.reason instanceof Error ? signal.reason : new Error("the post was given up"));
      signal?.addEventListener("abort", abandon, { once: true });
    });
    // Settled (timeout, abort, close) while the post is still being signed, before the
    // await below: handled here meanwhile, or Node would end the process on an unhandled
    // rejection. The caller still gets it from `await acked`.
    acked.catch(() => undefined);
    try {
      const socket = this.#link.socket;
      if (socket !== null) await this.#send(socket, this.#pending.get(key)!);
      return await acked;
    } finally {
      clearTimeout(timer);
      if (abandon !== undefined) signal?.removeEventListener("abort", abandon);
      this.#pending.delete(key);
    }
  }

  async #resend(socket: Socket): Promise<void> {
    for (const outgoing of [...this.#pending.values()]) if (!outgoing.done) await this.#send(socket, outgoing);
  }

  async #send(socket: Socket, outgoing: Outgoing): Promise<void> {
    const timestamp = Math.trunc(this.#o.clock());
    const message = postMessage(this.roomId, outgoing.postId, outgoing.kind, this.deviceId, timestamp, outgoing.body);
    socket.send(
      JSON.stringify({
        type: "post",
        post_id: b64encode(outgoing.postId),
        kind: outgoing.kind,
        body: b64encode(outgoing.body),
        timestamp,
        signature: b64encode(await this.#o.signer.sign(message)),
      }),
    );
  }

  /** The next post; raises the board's failure once the posts before it are read, an
   * Error once the board is closed, `Unavailable` "timeout" after `timeout` seconds. */
  async next(timeout?: number): Promise<Post> {
    if (this.#incoming.length === 0) {
      if (this.#link.failure !== null) throw this.#link.failure;
      if (this.#link.closed) throw new Error("the board is closed");
    }
    const deadline = timeout === undefined ? undefined : performance.now() + timeout * 1000;
    for (;;) {
      const item = this.#incoming.shift();
      if (item !== undefined) {
        if (item instanceof Error) throw item;
        return item;
      }
      const left = deadline === undefined ? undefined : deadline - performance.now();
      if (left !== undefined && left <= 0) throw new Unavailable(0, "timeout", `no board post within ${timeout} s`);
      await new Promise<void>((resolve) => {
        const timer = left === undefined ? undefined : setTimeout(resolve, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  async *posts(): AsyncGenerator<Post> {
    for (;;) yield await this.next();
  }

  async close(): Promise<void> {
    this.#link.close();
    await this.#runner;
    const closed = new Unavailable(0, "closed", "the board was closed before the post was acknowledged");
    for (const outgoing of this.#pending.values()) this.#settle(outgoing, closed);
    this.#push(new Error("the board is closed")); // wakes a reader
  }

  toJSON(): Record<string, string | number> {
    return { roomId: this.roomId, deviceId: this.deviceId, lastSeq: this.lastSeq, state: this.state };
  }
}


