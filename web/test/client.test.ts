/** The client's pieces that need no service: backoff schedules, reconnecting with an
 * injected sleep, the error mapping by code, approval payloads, user ids. */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  Backoff,
  DeviceRevoked,
  Forbidden,
  InvalidRequest,
  NotMember,
  RECONNECT,
  RETRY,
  ServiceError,
  Unavailable,
  Unauthorized,
  approvalPayload,
  parseApproval,
  userIdFor,
} from "../src/client/index.js";
import { serviceError } from "../src/client/errors.js";
import { Link } from "../src/client/link.js";
import type { Socket } from "../src/client/socket.js";
import { PrivateKey } from "../src/crypto/pre.js";
import { SigningKey } from "../src/crypto/signing.js";

test("the two schedules are Python's, and the last wait repeats", () => {
  assert.deepEqual(RECONNECT.delays, [0.1, 0.5, 1.0, 2.0, 5.0]);
  assert.deepEqual(RETRY.delays, [0.5, 1.0, 2.0, 5.0]);
  assert.equal(RETRY.delay(10), 5.0);
  const waits: number[] = [];
  for (const wait of RECONNECT) if (waits.push(wait) === 7) break;
  assert.deepEqual(waits, [0.1, 0.5, 1.0, 2.0, 5.0, 5.0, 5.0]);
  assert.throws(() => new Backoff([]), RangeError);
  assert.throws(() => new Backoff([1, -1]), RangeError);
});

test("a dropped link reopens after the RECONNECT waits, and stops at a refusal", async () => {
  const slept: number[] = [];
  let tries = 0;
  const socket = { close() {} } as unknown as Socket;
  const opener = async (): Promise<Socket> => {
    tries += 1;
    if (tries === 1) return socket;
    if (tries < 5) throw new Unavailable(0, "unreachable", "down");
    if (tries === 5) return socket;
    throw new DeviceRevoked(403, "device_revoked", "revoked");
  };
  const states: string[] = [];
  const link = new Link(opener, (state) => states.push(state), RECONNECT, async (s) => void slept.push(s));
  await link.open();
  assert.equal(await link.reopen(), socket); // after three failures
  assert.deepEqual(slept, [0.1, 0.5, 1.0, 2.0]);
  assert.equal(await link.reopen(), null); // refused for good
  assert.ok(link.failure instanceof DeviceRevoked);
  assert.deepEqual(states, ["connected", "reconnecting", "connected", "reconnecting", "failed"]);
});

test("errors are named by the service's stable code first, then the status", () => {
  assert.ok(serviceError(403, "device_revoked", "x") instanceof DeviceRevoked);
  assert.ok(serviceError(403, "not_member", "x") instanceof NotMember);
  assert.ok(serviceError(404, "no_access", "x") instanceof NotMember);
  assert.ok(serviceError(403, "not_admin", "x") instanceof Forbidden);
  assert.ok(serviceError(401, "invalid_token", "x") instanceof Unauthorized);
  assert.ok(serviceError(413, "too_large", "x") instanceof InvalidRequest);
  assert.ok(serviceError(503, "busy", "x") instanceof Unavailable);
  const other = serviceError(418, "teapot", "x");
  assert.equal(other.constructor, ServiceError);
  assert.equal(other.message, "418 teapot: x");
  assert.equal(other.name, "ServiceError");
});

test("approval payloads round-trip; user ids are made as the services make them", async () => {
  const key = PrivateKey.generate().publicKey;
  const signer = await SigningKey.generate();
  const [user, parsedKey, parsedSigner] = parseApproval(approvalPayload("ann", key, signer.verifyingKey));
  assert.equal(user, "ann");
  assert.ok(parsedKey.equals(key) && parsedSigner.equals(signer.verifyingKey));
  assert.throws(() => parseApproval("veil-approve-v0:a:b:c"), RangeError);
  assert.equal(await userIdFor("auth0|123"), "auth0~7C123");
  assert.equal(await userIdFor(".."), "~2E~2E");
  assert.equal(await userIdFor("é"), "~C3~A9");
  assert.match(await userIdFor("x".repeat(300)), /^~H[0-9a-f]{64}$/);
});

test("invitations round-trip as Python writes them, and malformed ones are refused", async () => {
  const { Invitation } = await import("../src/client/index.js");
  const key = PrivateKey.generate().publicKey;
  const invitation = new Invitation("team:standup", key);
  const text = invitation.toString();
  assert.match(text, /^veil-meeting-v1:team:standup:[A-Za-z0-9_-]+$/);
  const parsed = Invitation.parse(text);
  assert.equal(parsed.meetingId, "team:standup");
  assert.ok(parsed.groupKey.equals(key));
  for (const bad of ["veil-meeting-v2:m:" + text.split(":").pop(), "veil-meeting-v1:m", "veil-meeting-v1:..:" + text.split(":").pop(), "veil-meeting-v1:m:AAAA"]) {
    assert.throws(() => Invitation.parse(bad), RangeError);
  }
});
