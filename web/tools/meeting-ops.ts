/**
 * One meeting participant, driven by JSON requests: the command vocabulary of the
 * mixed-language meeting tests, the same in Node (web/tools/meeting-driver.ts, over
 * stdin/stdout) and in a browser page (web/test/browser/meeting-page.ts, called by
 * Playwright). Only how the device is made differs (`initialize`).
 *
 * A request: `{"op": "join", ...}`; `handle` resolves with the answer's `ok` part or
 * rejects with the SDK's named error. Answers carry public state only (epoch,
 * security code, members, chat read, and the session key's digest to compare with
 * Python's without showing the key).
 */

import { toHex } from "../src/crypto/encoding.js";
import { type Device, Meeting, MeetingTimers, type MeetingTimersInit } from "../src/client/index.js";

export type Request = Record<string, unknown> & { op: string };

/** Wall-clock milliseconds with the monotonic clock's resolution (comparable with
 * another process's wall clock on the same machine). */
export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

async function until(check: () => boolean, seconds: number): Promise<void> {
  const deadline = performance.now() + seconds * 1000;
  while (!check()) {
    if (performance.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export class MeetingOps {
  device: Device | undefined;
  meeting: Meeting | undefined;
  /** When each epoch's key was installed here (`wallClockMs`, at its `EpochChanged`). */
  readonly installedAt = new Map<bigint, number>();

  constructor(private readonly initialize: (sub: string) => Promise<Device>) {}

  #need<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw new Error(`no ${what} yet`);
    return value;
  }

  #adopt(meeting: Meeting): void {
    this.meeting = meeting;
    if (meeting.epoch !== null) this.installedAt.set(meeting.epoch, wallClockMs());
    meeting.events.on((event) => {
      if (event.type === "epoch-changed") this.installedAt.set(event.epoch, wallClockMs());
    });
  }

  async #keyDigest(epoch: bigint): Promise<string | null> {
    const key = this.meeting?.mediaKeys(epoch) ?? null;
    if (key === null) return null;
    return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", key)));
  }

  async state(): Promise<Record<string, unknown>> {
    const m = this.#need(this.meeting, "meeting");
    const epoch = m.epoch;
    return {
      epoch: epoch === null ? null : Number(epoch),
      security_code: m.securityCode,
      members: m.members,
      managing: m.managing,
      ended: m.ended,
      sender: m.senderNumber.toString(),
      participants: Object.fromEntries([...m.participants].map(([s, u]) => [s.toString(), u])),
      chat: m.chat.map((c) => [c.userId, c.text, Number(c.epoch)]),
      held: m.ciphertextsHeld(),
      key_digest: epoch === null ? null : await this.#keyDigest(epoch),
      errors: m.errors.map((e) => `${(e as Error).name}: ${(e as Error).message}`),
    };
  }

  async handle(r: Request): Promise<unknown> {
    const timers = r["timers"] ? new MeetingTimers(r["timers"] as MeetingTimersInit) : undefined;
    const options = timers ? { timers } : {};
    const meeting = (): Meeting => this.#need(this.meeting, "meeting");
    switch (r.op) {
      case "init":
        this.device = await this.initialize(String(r["sub"]));
        return { user_id: this.device.userId, device_id: this.device.deviceId };
      case "start":
        this.#adopt(
          await Meeting.start(this.#need(this.device, "device"), {
            invitees: r["invitees"] as string[],
            ...(r["host"] ? { host: String(r["host"]) } : {}),
            ...options,
          }),
        );
        return { invitation: meeting().invitation.toString(), ...(await this.state()) };
      case "join":
        this.#adopt(await Meeting.join(this.#need(this.device, "device"), String(r["invitation"]), options));
        return this.state();
      case "state":
        return this.state();
      case "key_digest": // this device's key of an epoch, if it holds one
        return this.#keyDigest(BigInt(r["epoch"] as number));
      case "installed_at": // epoch -> wall-clock ms
        return Object.fromEntries([...this.installedAt].map(([e, t]) => [e.toString(), t]));
      case "wait_epoch":
        await meeting().waitForEpoch(BigInt(r["epoch"] as number), 30);
        return this.state();
      case "wait_chat":
        await until(() => meeting().chat.length >= (r["count"] as number), 30);
        return this.state();
      case "wait_managing":
        await until(() => meeting().managing, 30);
        return this.state();
      case "wait_ended":
        await until(() => meeting().ended, 30);
        return this.state();
      case "chat":
        await meeting().sendChat(String(r["text"]));
        return {};
      case "rekey":
        await meeting().rekey();
        return this.state();
      case "hand_over":
        await meeting().handOver(BigInt(String(r["sender"])));
        return {};
      case "leave":
        await meeting().leave();
        return this.state();
      case "end":
        await meeting().end();
        return this.state();
      case "close":
        await this.meeting?.close({ rotateDeviceKeys: false });
        return {};
      default:
        throw new Error(`unknown op ${JSON.stringify(r.op)}`);
    }
  }

  /** `handle`'s answer as plain JSON: `{ok}`, or `{error: {name, message}}`. */
  async answer(r: Request): Promise<{ ok: unknown } | { error: { name: string; message: string } }> {
    try {
      return { ok: await this.handle(r) };
    } catch (e) {
      const error = e as Error;
      return { error: { name: error.name, message: error.message } };
    }
  }
}
