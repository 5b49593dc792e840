/**
 * What a meeting tells its application, as `veil.client.meeting.events`: typed events,
 * to callbacks and async iterators.
 *
 * `meeting.events.subscribe()` gives an async iterator of every event from then on
 * (each subscriber has its own unbounded queue: read it, or stop iterating with
 * `break`/`return()`); `meeting.events.on(callback)` calls a plain function for each
 * event (it must not block; what it throws is logged, never thrown into the meeting).
 * Nothing a meeting does fails silently: a failure of background work (a rekey that
 * could not be posted, a removal the key service refused, a malformed or untrusted
 * post) is a `MeetingFailure` event.
 *
 * Each event has a `type` (for a `switch`) and is also a class (for `instanceof`).
 * `JSON.stringify` of any event gives its `type` and fields, with epochs and sender
 * numbers (bigints) as decimal strings, as the meeting's and roster's own JSON give
 * them (a number would lose precision past 2^53); a chat event leaves its text out,
 * as Python's repr does, and a failure gives its error's name and message.
 */

import { ChatMessage } from "./chat.js";
import { Cancelled, Queue } from "./tasks.js";

/** The decimal string of a bigint (JSON has no bigint), or null. */
function decimal(value: bigint | null): string | null {
  return value === null ? null : value.toString();
}

export class ParticipantJoined {
  readonly type = "participant-joined";
  constructor(
    readonly sender: bigint,
    readonly userId: string,
    readonly deviceId: string,
  ) {}

  toJSON(): Record<string, string> {
    return { type: this.type, sender: this.sender.toString(), userId: this.userId, deviceId: this.deviceId };
  }
}

export class ParticipantLeft {
  readonly type = "participant-left";
  constructor(
    readonly sender: bigint,
    readonly userId: string,
    readonly deviceId: string,
  ) {}

  toJSON(): Record<string, string> {
    return { type: this.type, sender: this.sender.toString(), userId: this.userId, deviceId: this.deviceId };
  }
}

/** This device holds a new epoch's key (or, two admins having raced, the key every
 * client agreed on for the epoch); `meeting.mediaKeys(epoch)` gives it to the media layer. */
export class EpochChanged {
  readonly type = "epoch-changed";
  constructor(
    readonly epoch: bigint,
    readonly members: readonly string[],
    readonly securityCode: string,
    /** The device id of the key's poster, who manages the meeting from then on. */
    readonly manager: string,
  ) {}

  toJSON(): Record<string, unknown> {
    const { type, members, securityCode, manager } = this;
    return { type, epoch: this.epoch.toString(), members, securityCode, manager };
  }
}

/** A chat message read from the board: a `ChatMessage`, typed as an event. */
export class ChatReceived extends ChatMessage {
  readonly type = "chat-received";

  override toJSON(): Record<string, string> {
    return { type: this.type, ...super.toJSON() };
  }
}

export class ConnectionChanged {
  readonly type = "connection-changed";
  constructor(
    readonly channel: "board" | "media",
    /** "connected", "reconnecting", "failed" or "closed". */
    readonly state: string,
  ) {}

  toJSON(): Record<string, string> {
    return { type: this.type, channel: this.channel, state: this.state };
  }
}

/** The manager's heartbeat named a new deputy, or a deputy took over. */
export class ManagementChanged {
  readonly type = "management-changed";
  constructor(
    readonly manager: string,
    readonly deputy: bigint | null,
  ) {}

  toJSON(): Record<string, string | null> {
    return { type: this.type, manager: this.manager, deputy: decimal(this.deputy) };
  }
}

/** Something the meeting did in the background failed, or a post was refused. */
export class MeetingFailure {
  readonly type = "failure";
  constructor(readonly error: unknown) {}

  /** The error's name and message (which never hold a secret); JSON would show an
   * `Error` as `{}`. */
  toJSON(): Record<string, string> {
    const error = this.error;
    return { type: this.type, error: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
}

/** This device is no longer in the meeting's group: it holds no key any more. */
export class Removed {
  readonly type = "removed";

  toJSON(): Record<string, string> {
    return { type: this.type };
  }
}

/** The meeting ended: every key is gone. */
export class Ended {
  readonly type = "ended";

  toJSON(): Record<string, string> {
    return { type: this.type };
  }
}

export type MeetingEvent =
  | ParticipantJoined
  | ParticipantLeft
  | EpochChanged
  | ChatReceived
  | ConnectionChanged
  | ManagementChanged
  | MeetingFailure
  | Removed
  | Ended;

const HISTORY = 256;

export class EventStream {
  readonly #queues = new Set<Queue<MeetingEvent>>();
  readonly #callbacks: ((event: MeetingEvent) => void)[] = [];
  /** The newest failures (also sent as `MeetingFailure` events), for a look back. */
  readonly failures: unknown[] = [];

  on(callback: (event: MeetingEvent) => void): () => void {
    this.#callbacks.push(callback);
    return () => {
      const at = this.#callbacks.indexOf(callback);
      if (at >= 0) this.#callbacks.splice(at, 1);
    };
  }

  subscribe(): AsyncIterableIterator<MeetingEvent> {
    const queue = new Queue<MeetingEvent>();
    this.#queues.add(queue);
    const queues = this.#queues;
    // `return()` aborts a `next()` that is waiting, so that it settles as done rather
    // than waiting for an event this subscriber will never be given.
    const stopped = new AbortController();
    const done = { done: true, value: undefined } as const;
    const iterator: AsyncIterableIterator<MeetingEvent> = {
      async next() {
        if (stopped.signal.aborted) return done;
        try {
          return { done: false, value: await queue.get(stopped.signal) };
        } catch (error) {
          if (error instanceof Cancelled) return done;
          throw error;
        }
      },
      async return() {
        queues.delete(queue);
        stopped.abort();
        return done;
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  emit(event: MeetingEvent): void {
    if (event instanceof MeetingFailure) {
      this.failures.push(event.error);
      if (this.failures.length > HISTORY) this.failures.shift();
    }
    for (const queue of this.#queues) queue.put(event);
    for (const callback of [...this.#callbacks]) {
      try {
        callback(event);
      } catch (error) {
        // The application's bug must not stop the meeting.
        console.error("a meeting event callback raised:", error);
      }
    }
  }

  fail(error: unknown): void {
    this.emit(new MeetingFailure(error));
  }

  toJSON(): string {
    return "EventStream";
  }
}
