/**
 * One Node participant of a meeting, driven line by line over stdin/stdout (JSON), for
 * the mixed-language meeting tests (tests/web_sdk/test_meeting_node.py), where Python
 * devices sit in the same meeting. Needs the services' URLs as the integration tests
 * do (VEIL_IDP_URL, VEIL_KEYSERVER_URL, VEIL_CONFERENCE_URL). The commands are
 * web/tools/meeting-ops.ts's (a browser page takes the same ones).
 *
 * A request: `{"id": 1, "op": "join", ...}`; the answer: `{"id": 1, "ok": {...}}` or
 * `{"id": 1, "error": {"name": ..., "message": ...}}`.
 */

import { createInterface } from "node:readline";

import { initialize } from "../test/integration/services.js";
import { MeetingOps, type Request } from "./meeting-ops.js";

const ops = new MeetingOps((sub) => initialize(sub));

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const request = JSON.parse(line) as Request & { id: number };
  // Each request runs at once (a wait does not hold up the next request).
  void ops.answer(request).then((answer) => process.stdout.write(`${JSON.stringify({ id: request.id, ...answer })}\n`));
}
await ops.meeting?.close({ rotateDeviceKeys: false });
// No process.exit(): once its meeting is closed nothing of the SDK may keep Node running
// (a timer, a socket, a listener), and the Python side fails if the process does not end.
