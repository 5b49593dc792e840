/**
 * The media tests' page: each function runs one scenario in this page (fake camera and
 * microphone, peer connections connected directly) and returns plain JSON for
 * tests/web_sdk/test_media_browser.py to check.
 */

import { type MediaReport, VeilMedia, follow } from "../../src/media/index.js";
import { pictureSpread } from "../../src/sfu/probe.js";
import { type SFrameBench, inWorker } from "../../tools/sframe-bench.js";
import { type Call, ManualKeySource, camera, oneWay, received, sessionKey, sleep } from "./media-call.js";

const MEETING = "media-test";
const ALICE = 0xa11cen;
const BOB = 0xb0bn;
const CAROL = 0xca201n;

/** What the workers reported as unexpected errors (none may occur, attacked or not). */
const workerErrors: string[] = [];
const onError = (message: string): void => void workerErrors.push(message);

interface Sample {
  at: number;
  framesDecoded: number;
  audioDecoded: number;
}

async function sample(call: Call): Promise<Sample> {
  return { at: performance.now(), ...(await received(call.receiving)) };
}

function plain(report: MediaReport): Record<string, unknown> {
  return { ...report, epoch: report.epoch?.toString() };
}

/** Alice to Bob for 4 s; a rekey that reaches Alice 200 ms before Bob (his first
 * epoch-2 frames wait for his key); 3.5 s on, a rekey that reaches Bob 200 ms before
 * Alice (he opens her epoch-2 frames in the grace period); 2 s more; then Bob leaves.
 * Bob's keys come through `follow` from a key source, as a Meeting's would. */
export async function callAndRekey(legacy = false): Promise<Record<string, unknown>> {
  const api = legacy ? "encoded-streams" : "script-transform";
  const alice = new VeilMedia({ meetingId: MEETING, sender: ALICE, api, onError });
  const meeting = new ManualKeySource(MEETING, BOB);
  meeting.install(1n, sessionKey(1));
  const { media: bob, stop } = follow(meeting, { api, onError });
  alice.setEpochKey(1n, sessionKey(1));
  const call = await oneWay(alice, bob, await camera(), { bind: ALICE, legacy });
  await sleep(2000);
  const first = await sample(call);
  await sleep(2000);
  const second = await sample(call);
  const spread = pictureSpread(call.video);
  // The rekey: Alice switches at once; Bob's first epoch-2 frames wait for his key.
  const polls: Sample[] = [];
  const poller = setInterval(() => void sample(call).then((s) => polls.push(s)), 20);
  await sleep(500);
  const posted = performance.timeOrigin + performance.now();
  alice.setEpochKey(2n, sessionKey(2));
  await sleep(200);
  meeting.install(2n, sessionKey(2));
  await sleep(3500);
  const third = await sample(call);
  const middle = await bob.report();
  meeting.install(3n, sessionKey(3));
  await sleep(200);
  alice.setEpochKey(3n, sessionKey(3));
  await sleep(2000);
  clearInterval(poller);
  const fourth = await sample(call);
  let stall = 0;
  let last = polls[0];
  for (const p of polls) {
    if (last !== undefined && p.framesDecoded > last.framesDecoded) {
      stall = Math.max(stall, p.at - last.at);
      last = p;
    }
  }
  const end = polls[polls.length - 1];
  if (end !== undefined && last !== undefined) stall = Math.max(stall, end.at - last.at);
  const report = await bob.report();
  // Bob leaves: his worker drops every key, and nothing he gets decodes any more.
  meeting.leave();
  await sleep(1000);
  const left = await sample(call);
  await sleep(2000);
  const later = await sample(call);
  const result = {
    after_leaving: [left, later],
    left_report: plain(await bob.report()),
    samples: [first, second, third, fourth],
    after_first_rekey: plain(middle),
    spread,
    sent: plain(await alice.report()),
    received: plain(report),
    first_new_epoch_ms: (report.firstOpened["2"] ?? Number.NaN) - posted,
    longest_stall_ms: stall,
  };
  call.close();
  alice.close();
  stop();
  return result;
}

/** Alice to Bob for 4 s with `videoCodec` negotiated first. */
export async function codecCall(videoCodec: string): Promise<Record<string, unknown>> {
  const alice = new VeilMedia({ meetingId: MEETING, sender: ALICE, onError });
  const bob = new VeilMedia({ meetingId: MEETING, sender: BOB, onError });
  for (const m of [alice, bob]) m.setEpochKey(1n, sessionKey(1));
  const call = await oneWay(alice, bob, await camera(), { bind: ALICE, videoCodec });
  await sleep(2000);
  const first = await sample(call);
  await sleep(2000);
  const received = plain(await bob.report());
  const second = await sample(call); // after the report: its RTX count covers the report's
  const result = { samples: [first, second], spread: pictureSpread(call.video), received };
  call.close();
  alice.close();
  bob.close();
  return result;
}

/** Carol holds a different key for the epoch: nothing she gets may decode. */
export async function wrongKey(): Promise<Record<string, unknown>> {
  const alice = new VeilMedia({ meetingId: MEETING, sender: ALICE, onError });
  const carol = new VeilMedia({ meetingId: MEETING, sender: CAROL, onError });
  alice.setEpochKey(1n, sessionKey(1));
  carol.setEpochKey(1n, sessionKey(66));
  const call = await oneWay(alice, carol, await camera(), { bind: ALICE });
  await sleep(4000);
  const result = { after: await sample(call), spread: pictureSpread(call.video), sent: plain(await alice.report()), received: plain(await carol.report()) };
  call.close();
  alice.close();
  carol.close();
  return result;
}

/** A dishonest sender (`media-attack-worker.ts`) to Bob, bound to Alice's sender number. */
export async function attacked(attack: string): Promise<Record<string, unknown>> {
  const workerUrl = new URL(`./media-attack-worker.js?attack=${attack}`, import.meta.url);
  const alice = new VeilMedia({ meetingId: MEETING, sender: ALICE, workerUrl, onError });
  const bob = new VeilMedia({ meetingId: MEETING, sender: BOB, grace: 1000, onError });
  for (const m of [alice, bob]) m.setEpochKey(1n, sessionKey(1));
  const call = await oneWay(alice, bob, await camera(), { bind: ALICE });
  await sleep(3000);
  const first = await sample(call);
  await sleep(2500);
  const received = plain(await bob.report());
  const second = await sample(call); // after the report: its RTX count covers the report's
  const result = { samples: [first, second], received };
  call.close();
  alice.close();
  bob.close();
  return result;
}

export function errors(): string[] {
  return [...workerErrors];
}

/** SFrame against bare AES-GCM in a worker, per frame of `size` bytes (tools/sframe-bench.ts). */
export function bench(size: number, codec: string, runs: number): Promise<SFrameBench> {
  return inWorker(size, codec, runs);
}
