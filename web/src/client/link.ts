/**
 * One connection that opens itself again after a drop, as `veil.client.conference._Link`:
 * its socket (`null` while down), its state for the application's callback, the
 * RECONNECT backoff, and the refusal that ended it, if one did.
 */

import { ServiceError, Unavailable } from "./errors.js";
import { type Backoff, RECONNECT } from "./retry.js";
import type { Socket } from "./socket.js";

/** "connected" (also after each reconnect), "reconnecting", "failed" or "closed". */
export type StateCallback = (state: string) => void;
export type Sleep = (seconds: number) => Promise<void>;

export const sleep: Sleep = (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

export class Link {
  socket: Socket | null = null;
  state = "new";
  failure: ServiceError | null = null;
  closed = false;

  constructor(
    private readonly opener: () => Promise<Socket>,
    private readonly onState: StateCallback | undefined,
    private readonly backoff: Backoff = RECONNECT,
    private readonly wait: Sleep = sleep,
  ) {}

  /** The first connection (its refusal is raised to the caller). */
  async open(): Promise<Socket> {
    const socket = await this.opener();
    this.#set(socket, "connected");
    return socket;
  }

  /** After a drop: retry until a connection opens, the service refuses for good
   * (`null`, `failure` says why) or the application closes (`null`). */
  async reopen(): Promise<Socket | null> {
    this.#set(null, "reconnecting");
    for (const delay of this.backoff) {
      await this.wait(delay);
      if (this.closed) return null;
      let socket: Socket;
      try {
        socket = await this.opener();
      } catch (error) {
        if (error instanceof Unavailable) continue;
        if (error instanceof ServiceError) {
          this.failure = error;
          this.#set(null, "failed");
          return null;
        }
        console.warn("reconnecting to the conference service failed:", (error as Error).name);
        continue; // the application's token source, say: keep trying, loudly
      }
      if (this.closed) {
        socket.close();
        return null;
      }
      this.#set(socket, "connected");
      return socket;
    }
    throw new Error("unreachable: the delays never end");
  }

  close(): void {
    this.closed = true;
    const socket = this.socket;
    this.#set(null, "closed");
    socket?.close();
  }

  #set(socket: Socket | null, state: string): void {
    this.socket = socket;
    this.state = state;
    try {
      this.onState?.(state);
    } catch (error) {
      console.error("an onState callback raised:", (error as Error).name);
    }
  }
}
