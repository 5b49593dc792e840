/**
 * The services a `veil serve` started for these tests (tests/web_sdk/test_sdk_node.py
 * sets VEIL_IDP_URL, VEIL_KEYSERVER_URL, VEIL_CONFERENCE_URL); tests skip without them.
 */

import { WebSocket } from "ws";

import { devIdpTokens } from "../dev-idp.js";
import { type WebSocketConstructor, Device, MemoryDeviceStore, type InitializeOptions, type TokenSource } from "../../src/client/index.js";

export const urls = {
  idp: process.env["VEIL_IDP_URL"] ?? "",
  keyserver: process.env["VEIL_KEYSERVER_URL"] ?? "",
  conference: process.env["VEIL_CONFERENCE_URL"] ?? "",
};

/** Why the integration tests skip, or false when the services are there. */
export const skip: string | false =
  urls.idp && urls.keyserver && urls.conference ? false : "no veil serve: run tests/web_sdk/test_sdk_node.py";

/** A user name no other test (or run) uses. */
export function fresh(name: string): string {
  return `${name}-${crypto.randomUUID().slice(0, 8)}`;
}

/** The dev IdP's tokens for `sub`, one per audience asked. */
export function tokensFor(sub: string): TokenSource {
  return devIdpTokens(urls.idp, sub);
}

export function initialize(sub: string, options: Partial<InitializeOptions> = {}): Promise<Device> {
  return Device.initialize({
    keyserverUrl: urls.keyserver,
    conferenceUrl: urls.conference,
    tokens: tokensFor(sub),
    store: new MemoryDeviceStore(),
    // Node 20 has no global WebSocket: the `ws` package's (a dev dependency).
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    ...options,
  });
}
