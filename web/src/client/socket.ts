/**
 * One board or media WebSocket past the hello, as `veil.client.conference.open_socket`:
 * the service's challenge, a hello signed by the device, and its welcome. Whatever
 * keeps it from opening, short of the service's refusal, is `Unavailable` (worth
 * retrying); a refusal is the `ServiceError` for its code and status (the close code
 * is 4000 + the status).
 *
 * The WebSocket class is the application's (`globalThis.WebSocket` in browsers; Node
 * 20 has none, so Node passes one, e.g. the `ws` package's).
 */

import type { SigningKey } from "../crypto/signing.js";
import { b64decode, b64encode, helloMessage } from "../protocol/wire.js";
import { Unavailable, serviceError } from "./errors.js";

/** What the SDK uses of a WebSocket: the WHATWG API. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: "open" | "message" | "close" | "error", listener: (event: never) => void): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export const HANDSHAKE_SECONDS = 10;

/** The ws:// (or wss://) URL of a path on an http(s) service. */
export function wsUrl(baseUrl: string, path: string): string {
  const url = new URL(baseUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.pathname = url.pathname.replace(/\/+$/, "") + path;
  return url.href;
}

/** A socket read as a queue of text messages; `recv` rejects once it is closed. */
export class Socket {
  readonly #socket: WebSocketLike;
  readonly #queue: string[] = [];
  #waiter: (() => void) | undefined;
  closeCode: number | null = null;
  readonly closed: Promise<void>;

  private constructor(socket: WebSocketLike) {
    this.#socket = socket;
    this.closed = new Promise((resolve) => {
      socket.addEventListener("close", (event: { code: number }) => {
        this.closeCode = event.code;
        this.#wake();
        resolve();
      });
    });
    socket.addEventListener("message", (event: { data: unknown }) => {
      if (typeof event.data === "string") {
        this.#queue.push(event.data);
        this.#wake();
      }
    });
  }

  static open(WebSocket: WebSocketConstructor, url: string, seconds: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      let socket: WebSocketLike;
      try {
        socket = new WebSocket(url);
      } catch (error) {
        reject(new Unavailable(0, "unreachable", `${url}: ${(error as Error).message}`));
        return;
      }
      const wrapped = new Socket(socket);
      const timer = setTimeout(() => {
        socket.close();
        reject(new Unavailable(0, "unreachable", `${url}: no connection within ${seconds} s`));
      }, seconds * 1000);
      socket.addEventListener("open", () => {
        clearTimeout(timer);
        resolve(wrapped);
      });
      socket.addEventListener("error", (event: { message?: string }) => {
        clearTimeout(timer);
        reject(new Unavailable(0, "unreachable", `${url}: ${event.message ?? "the connection failed"}`));
      });
    });
  }

  #wake(): void {
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.();
  }

  /** The next text message; `null` once the socket is closed and drained. */
  async recv(): Promise<string | null> {
    for (;;) {
      const next = this.#queue.shift();
      if (next !== undefined) return next;
      if (this.closeCode !== null) return null;
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  get open(): boolean {
    return this.closeCode === null && this.#socket.readyState === 1;
  }

  send(data: string): void {
    if (this.open) this.#socket.send(data); // else resent after the reconnect
  }

  close(): void {
    this.#socket.close(1000);
  }
}

function withTimeout<T>(promise: Promise<T>, seconds: number, onTimeout: () => void): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onTimeout();
      reject(new Unavailable(0, "closed", "the conference service did not answer the hello in time"));
    }, seconds * 1000);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface Hello {
  roomId: string;
  channel: "board" | "media";
  token: string;
  deviceId: string;
  signer: SigningKey;
  extra: Record<string, unknown>;
}

/** A socket past the hello; its welcome. */
export async function openSocket(WebSocket: WebSocketConstructor, url: string, hello: Hello): Promise<Socket> {
  const socket = await Socket.open(WebSocket, url, HANDSHAKE_SECONDS);
  const handshake = async (): Promise<Record<string, unknown>> => {
    const first = await socket.recv();
    if (first === null) throw new Unavailable(0, "closed", "the conference service closed the connection");
    const challenge = b64decode((JSON.parse(first) as { challenge: string }).challenge);
    const message = helloMessage(hello.roomId, hello.channel, challenge, hello.deviceId);
    socket.send(
      JSON.stringify({
        type: "hello",
        token: hello.token,
        device_id: hello.deviceId,
        signature: b64encode(await hello.signer.sign(message)),
        ...hello.extra,
      }),
    );
    const second = await socket.recv();
    if (second === null) throw new Unavailable(0, "closed", "the conference service closed the connection");
    const welcome = JSON.parse(second) as unknown;
    if (typeof welcome !== "object" || welcome === null || Array.isArray(welcome)) {
      throw new TypeError("the answer to a hello is a JSON object");
    }
    return welcome as Record<string, unknown>;
  };
  let welcome: Record<string, unknown>;
  try {
    welcome = await withTimeout(handshake(), HANDSHAKE_SECONDS, () => socket.close());
  } catch (error) {
    socket.close();
    if (error instanceof Unavailable) throw error;
    throw new Unavailable(0, "bad_hello", "the conference service's hello is malformed");
  }
  if (welcome["type"] !== "error") return socket;
  await withTimeout(socket.closed, HANDSHAKE_SECONDS, () => socket.close()).catch(() => undefined);
  const code = String(welcome["code"] ?? "refused");
  const text = String(welcome["message"] ?? "");
  const closeCode = socket.closeCode ?? 0;
  if (!(closeCode >= 4000 && closeCode < 5000)) throw new Unavailable(0, code, text); // no status: try again
  throw serviceError(closeCode - 4000, code, text);
}
