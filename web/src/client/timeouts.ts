/** setTimeout's limits: a wait longer than 2^31 - 1 ms (24.8 days) fires at once. */

/** setTimeout's longest wait, in milliseconds. */
export const LONGEST_TIMEOUT_MS = 2 ** 31 - 1;

/** A timeout of `seconds`, or none past setTimeout's limit (a timeout of a month, or
 * `Infinity`, is as good as none, where setTimeout would fire it at once). */
export function timeoutAfter(seconds: number, fire: () => void): ReturnType<typeof setTimeout> | undefined {
  const ms = Math.max(0, seconds) * 1000;
  return ms > LONGEST_TIMEOUT_MS ? undefined : setTimeout(fire, ms);
}
