/**
 * What asyncio gives the Python meeting and JavaScript does not: background work that
 * can be stopped (`Scope`), an event that stays set until cleared (`Signal`), a queue
 * (`Queue`), a lock (`Lock`) and a result to wait for (`Deferred`). Every wait takes
 * an `AbortSignal` and rejects with `Cancelled` when it aborts, so stopping a scope
 * ends every loop in it at its next wait.
 */

import { timeoutAfter } from "../timeouts.js";

/** The work waiting was stopped (a leave, the end, a close): not a failure. */
export class Cancelled extends Error {
  override name = "Cancelled";
  constructor() {
    super("the meeting stopped this work");
  }
}

function aborted(signal: AbortSignal | undefined, reject: (error: Error) => void): (() => void) | undefined {
  if (signal === undefined) return undefined;
  const stop = (): void => reject(new Cancelled());
  signal.addEventListener("abort", stop, { once: true });
  return () => signal.removeEventListener("abort", stop);
}

/** Background tasks that stop together; a task's failure goes to `onFailure`. */
export class Scope {
  readonly #controller = new AbortController();
  readonly #tasks = new Set<Promise<void>>();

  constructor(private readonly onFailure: (error: unknown) => void) {}

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get stopped(): boolean {
    return this.#controller.signal.aborted;
  }

  spawn(work: () => Promise<void>): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const task = (async () => {
      try {
        await work();
      } catch (error) {
        if (!(error instanceof Cancelled) && !this.stopped) this.onFailure(error);
      }
    })();
    this.#tasks.add(task);
    void task.finally(() => this.#tasks.delete(task));
    return task;
  }

  /** Stop every task at its next wait, and wait until they have all ended. The signal's
   * reason is `Cancelled`, so a wait that passes it on (a board post) ends as one. */
  async stop(): Promise<void> {
    this.#controller.abort(new Cancelled());
    await Promise.allSettled([...this.#tasks]);
  }
}

/** asyncio.Event: `wait` returns at once while set. */
export class Signal {
  #set = false;
  #waiters: (() => void)[] = [];

  get isSet(): boolean {
    return this.#set;
  }

  set(): void {
    this.#set = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  clear(): void {
    this.#set = false;
  }

  wait(signal?: AbortSignal): Promise<void> {
    if (this.#set) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(new Cancelled());
    return new Promise<void>((resolve, reject) => {
      const detach = aborted(signal, (error) => {
        this.#waiters = this.#waiters.filter((w) => w !== wake);
        reject(error);
      });
      const wake = (): void => {
        detach?.();
        resolve();
      };
      this.#waiters.push(wake);
    });
  }
}

/** An unbounded first-in first-out queue. */
export class Queue<T> {
  readonly #items: T[] = [];
  readonly #ready = new Signal();

  put(item: T): void {
    this.#items.push(item);
    this.#ready.set();
  }

  async get(signal?: AbortSignal): Promise<T> {
    for (;;) {
      if (this.#items.length > 0) return this.#items.shift() as T;
      this.#ready.clear();
      await this.#ready.wait(signal);
    }
  }
}

/** One holder at a time, in the order they asked. */
export class Lock {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(work);
    this.#tail = result.catch(() => undefined);
    return result;
  }
}

/** A result someone waits for, settled once (later settlements are ignored). */
export class Deferred<T> {
  readonly promise: Promise<T>;
  done = false;
  #resolve!: (value: T) => void;

  constructor() {
    this.promise = new Promise<T>((resolve) => (this.#resolve = resolve));
  }

  resolve(value: T): void {
    if (this.done) return;
    this.done = true;
    this.#resolve(value);
  }
}

/** `promise`, or `onTimeout()`'s error after `seconds` (real time), or `Cancelled` once
 * `signal` aborts (the wait is given up; the work waited for is not stopped by it). */
export function withTimeout<T>(promise: Promise<T>, seconds: number, onTimeout: () => Error, signal?: AbortSignal): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let detach: (() => void) | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = timeoutAfter(seconds, () => reject(onTimeout()));
    if (signal?.aborted) reject(new Cancelled());
    else detach = aborted(signal, reject);
  });
  return Promise.race([promise, late]).finally(() => {
    clearTimeout(timer);
    detach?.();
  });
}
