/**
 * A meeting's timers and the clock they read, as `veil.client.meeting.timers`
 * (injectable, so tests move or scale time by hand). All values are in seconds.
 */

import { LONGEST_TIMEOUT_MS } from "../timeouts.js";
import { Cancelled } from "./tasks.js";

/** Where a meeting's timers read the time and wait. `sleep` rejects with `Cancelled`
 * once `signal` aborts (the meeting stopped the work that waits). */
export interface Clock {
  time(): number;
  sleep(seconds: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  time: () => performance.now() / 1000,
  sleep: (seconds, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(new Cancelled());
      // A wait past setTimeout's limit (a ratchet of a month, or `Infinity` for never)
      // is slept in pieces, as asyncio.sleep takes any length.
      let left = Math.max(0, seconds) * 1000;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (): void => {
        signal?.removeEventListener("abort", stop);
        resolve();
      };
      const wait = (): void => {
        const piece = Math.min(left, LONGEST_TIMEOUT_MS);
        left -= piece;
        timer = setTimeout(left > 0 ? wait : done, piece);
      };
      const stop = (): void => {
        clearTimeout(timer);
        reject(new Cancelled());
      };
      signal?.addEventListener("abort", stop, { once: true });
      wait();
    }),
};

export interface MeetingTimersInit {
  /** After a leave, how long the manager waits for more leavers before it rekeys. */
  debounce?: number;
  /** The manager rekeys when this passes without a rekey (restarts at every rekey). */
  rekeyInterval?: number;
  /** A joiner's waits between attempts to get the key transformed for it. */
  joinRetries?: readonly number[];
  /** How long a receiver keeps the previous epoch's keys after a rekey (the media layer's). */
  epochGrace?: number;
  /** How often the manager posts that it is alive (`alive`). */
  heartbeat?: number;
  /** How long the deputy waits without a sign of life from the manager before it takes
   * over (it looks every `heartbeat / 2`), and the manager without one from its deputy
   * before it names another. */
  failover?: number;
  /** How long a post is retried across reconnects before the meeting reports it failed. */
  postTimeout?: number;
}

/** Python's `MeetingTimers`, with its defaults; every value can be changed. */
export class MeetingTimers {
  readonly debounce: number;
  readonly rekeyInterval: number;
  readonly joinRetries: readonly number[];
  readonly epochGrace: number;
  readonly heartbeat: number;
  readonly failover: number;
  readonly postTimeout: number;

  constructor(init: MeetingTimersInit = {}) {
    this.debounce = init.debounce ?? 10.0;
    this.rekeyInterval = init.rekeyInterval ?? 300.0;
    this.joinRetries = Object.freeze([...(init.joinRetries ?? [1.0, 5.0, 10.0, 10.0])]);
    this.epochGrace = init.epochGrace ?? 5.0;
    this.heartbeat = init.heartbeat ?? 3.0;
    this.failover = init.failover ?? 10.0;
    this.postTimeout = init.postTimeout ?? 120.0;
    if (this.failover <= this.heartbeat) throw new RangeError("failover must be longer than the heartbeat interval");
    Object.freeze(this);
  }
}
