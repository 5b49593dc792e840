/**
 * One Node participant of a meeting, driven line by line over stdin/stdout (JSON), for
 * the mixed-language meeting tests (tests/web_sdk/test_meeting_node.py), where Python
 * devices sit in the same meeting. Needs the services' URLs as the integration tests
 * do (VEIL_IDP_URL, VEIL_KEYSERVER_URL, VEIL_CONFERENCE_URL).
 *
 * A request: `{"id": 1, "op": "join", ...}`; the answer: `{"id": 1, "ok": {...}}` or
 * `{"id": 1, "error": {"name": ..., "message": ...}}`. Answers carry public state only
 * (epoch, security code, members, chat read, and the session key's digest to compare
 * with Python's without printing the key).
 */

import { createInterface } from "node:readline";

import { toHex } from "../src/crypto/encoding.js";
import { type Device, Meeting, MeetingTimers, type MeetingTimersInit } from "../src/client/index.js";
import { initialize } from "../test/integration/services.js";

let device: Device | undefined;
let meeting: Meeting | undefined;

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`no ${what} yet`);
  return value;
}

async function keyDigest(epoch: bigint): Promise<string | null> {
  const key = meeting?.mediaKeys(epoch) ?? null;
  if (key === null) return null;
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", key)));
}

async function state(): Promise<Record<string, unknown>> {
  const m = need(meeting, "meeting");
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
    key_digest: epoch === null ? null : await keyDigest(epoch),
    errors: m.errors.map((e) => `${(e as Error).name}: ${(e as Error).message}`),
  };
}

async function until(check: () => boolean, seconds: number): Promise<void> {
  const deadline = performance.now() + seconds * 1000;
  while (!check()) {
    if (performance.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

type Request = Record<string, unknown> & { id: number; op: string };

async function handle(r: Request): Promise<unknown> {
  const timers = r["timers"] ? new MeetingTimers(r["timers"] as MeetingTimersInit) : undefined;
  const options = timers ? { timers } : {};
  switch (r.op) {
    case "init":
      device = await initialize(String(r["sub"]));
      return { user_id: device.userId, device_id: device.deviceId };
    case "start":
      meeting = await Meeting.start(need(device, "device"), {
        invitees: r["invitees"] as string[],
        ...(r["host"] ? { host: String(r["host"]) } : {}),
        ...options,
      });
      return { invitation: meeting.invitation.toString(), ...(await state()) };
    case "join":
      meeting = await Meeting.join(need(device, "device"), String(r["invitation"]), options);
      return state();
    case "state":
      return state();
    case "wait_epoch":
      await need(meeting, "meeting").waitForEpoch(BigInt(r["epoch"] as number), 30);
      return state();
    case "wait_chat":
      await until(() => need(meeting, "meeting").chat.length >= (r["count"] as number), 30);
      return state();
    case "wait_managing":
      await until(() => need(meeting, "meeting").managing, 30);
      return state();
    case "wait_ended":
      await until(() => need(meeting, "meeting").ended, 30);
      return state();
    case "chat":
      await need(meeting, "meeting").sendChat(String(r["text"]));
      return {};
    case "hand_over":
      await need(meeting, "meeting").handOver(BigInt(String(r["sender"])));
      return {};
    case "leave":
      await need(meeting, "meeting").leave();
      return state();
    case "end":
      await need(meeting, "meeting").end();
      return state();
    case "close":
      await meeting?.close({ rotateDeviceKeys: false });
      return {};
    default:
      throw new Error(`unknown op ${JSON.stringify(r.op)}`);
  }
}

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const request = JSON.parse(line) as Request;
  // Each request runs at once (a wait does not hold up the next request).
  void handle(request).then(
    (ok) => process.stdout.write(`${JSON.stringify({ id: request.id, ok })}\n`),
    (error: Error) => process.stdout.write(`${JSON.stringify({ id: request.id, error: { name: error.name, message: error.message } })}\n`),
  );
}
await meeting?.close({ rotateDeviceKeys: false });
// No process.exit(): once its meeting is closed nothing of the SDK may keep Node running
// (a timer, a socket, a listener), and the Python side fails if the process does not end.
