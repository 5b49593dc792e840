/**
 * A meeting participant in a browser page, for tests/web_sdk/test_meeting_browser.py
 * and the key-post timing (veil.bench.webmeeting): the page's module script makes one
 * with `participant(services)` and puts it on `window`; Playwright then calls its
 * `answer(request)` with web/tools/meeting-ops.ts's commands (the Node driver's) and
 * reads plain JSON back. Its device is made in split-trust mode with the dev IdP's
 * tokens, kept in memory, and uses the browser's own WebSocket and fetch: the page's
 * origin must be one the services allow (`VEIL_CORS_ORIGINS`).
 *
 * No side effects on import: `node --test` loads every file under dist/test.
 */

import { Device, MemoryDeviceStore } from "../../src/client/index.js";
import { MeetingOps } from "../../tools/meeting-ops.js";
import { devIdpTokens } from "../dev-idp.js";

export interface Services {
  idp_url: string;
  keyserver_url: string;
  conference_url: string;
}

export function participant(services: Services): MeetingOps {
  return new MeetingOps((sub) =>
    Device.initialize({
      keyserverUrl: services.keyserver_url,
      conferenceUrl: services.conference_url,
      tokens: devIdpTokens(services.idp_url, sub),
      store: new MemoryDeviceStore(),
      mode: "split-trust",
    }),
  );
}
