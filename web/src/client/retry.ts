/**
 * The SDK's one backoff policy, as `veil.client.retry`: waits grow through a short
 * schedule and the last one repeats for as long as the failures go on; whoever
 * retries decides when to give up.
 */

export class Backoff {
  readonly delays: readonly number[];

  /** `delays`: seconds to wait before each retry in turn; the last repeats. */
  constructor(delays: readonly number[]) {
    if (delays.length === 0 || delays.some((delay) => !(delay >= 0))) {
      throw new RangeError("a backoff needs one or more delays, none negative");
    }
    this.delays = Object.freeze([...delays]);
  }

  /** The wait (seconds) before the next retry, after `retries` retries already made. */
  delay(retries: number): number {
    return this.delays[Math.min(retries, this.delays.length - 1)] as number;
  }

  /** Every wait in turn, without end. */
  *[Symbol.iterator](): Iterator<number> {
    for (let retries = 0; ; retries++) yield this.delay(retries);
  }
}

/** Before each attempt to open a dropped board or media connection again. */
export const RECONNECT = new Backoff([0.1, 0.5, 1.0, 2.0, 5.0]);

/** Before work a service refused for a moment is tried again. */
export const RETRY = new Backoff([0.5, 1.0, 2.0, 5.0]);
