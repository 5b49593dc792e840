/**
 * The example page at `/app/` (web/app/index.html), served by `veil serve`: sign in
 * through the all-in-one stack's dev IdP, then set this browser up as a device of
 * that user in split-trust mode, its context sealed in IndexedDB
 * (`IndexedDbDeviceStore`, one per user name), and show who and which device it is.
 * A second sign-in with the same name in this browser loads the saved device.
 *
 * Signed in, the page starts or joins meetings (`meeting-panel.ts`); opened from an
 * invitation link (`invitation-link.ts`), it offers to join that meeting. Nothing
 * secret is shown or logged; errors show their name and message, which carry no
 * secret.
 */

import { Device, IndexedDbDeviceStore, type TokenSource } from "../src/client/index.js";
import { describe, element, status } from "./dom.js";
import { MeetingPanel } from "./meeting-panel.js";

interface Config {
  keyserver_url: string;
  idp_url: string | null;
}

/** Tokens for `user` from the dev IdP, one per audience asked for (each service's own). */
function devIdpTokens(idpUrl: string, user: string): TokenSource {
  return async (audience) => {
    const response = await fetch(new URL("/token", idpUrl), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sub: user, audience }),
    });
    if (!response.ok) throw new Error(`the IdP refused a token (${response.status})`);
    return ((await response.json()) as { token: string }).token;
  };
}

async function signIn(config: Config, user: string): Promise<Device> {
  if (config.idp_url === null) throw new Error("this service names no IdP to sign in with");
  const store = new IndexedDbDeviceStore(user);
  const saved = (await store.load()) !== null;
  status(saved ? "Loading this browser's saved device…" : "Setting up this browser as a new device…", "busy");
  const device = await Device.initialize({
    keyserverUrl: config.keyserver_url,
    conferenceUrl: location.origin,
    tokens: devIdpTokens(config.idp_url, user),
    store,
    mode: "split-trust",
  });
  element("user-id").textContent = device.userId;
  element("device-id").textContent = device.deviceId;
  element("mode").textContent = device.mode;
  element("saved").textContent = saved ? "loaded from this browser" : "registered now, saved in this browser";
  return device;
}

function show(signedIn: boolean): void {
  element("sign-in").hidden = signedIn;
  element("device").hidden = !signedIn;
  element("meeting").hidden = !signedIn;
}

async function main(): Promise<void> {
  const config = (await (await fetch("config.json")).json()) as Config;
  const form = element<HTMLFormElement>("sign-in-form");
  const button = element<HTMLButtonElement>("sign-in-button");
  let device: Device | null = null;
  let user = "";
  // The device stays while it is in a meeting: sign out and forget wait for the end.
  const panel = new MeetingPanel((active) => {
    for (const id of ["sign-out", "forget"]) element<HTMLButtonElement>(id).disabled = active;
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    user = element<HTMLInputElement>("user").value.trim();
    if (!user) return;
    button.disabled = true;
    signIn(config, user)
      .then((signedIn) => {
        device = signedIn;
        panel.use(device);
        show(true);
        const invited = panel.offer(location.href);
        status(`Signed in as ${device.userId}.${invited ? " You were invited to a meeting: Join to take part." : ""}`, "signed-in");
      })
      .catch((error: unknown) => status(describe(error), "error"))
      .finally(() => {
        button.disabled = false;
      });
  });
  element("sign-out").addEventListener("click", () => {
    device = null;
    panel.use(null);
    show(false);
    status("Signed out. This browser keeps the device for the next sign-in.", "signed-out");
  });
  element("forget").addEventListener("click", () => {
    new IndexedDbDeviceStore(user)
      .clear()
      .then(() => {
        device = null;
        panel.use(null);
        show(false);
        status("This browser no longer holds that device (it stays registered until revoked).", "signed-out");
      })
      .catch((error: unknown) => status(describe(error), "error"));
  });
  window.addEventListener("hashchange", () => {
    if (device !== null && !panel.active && panel.offer(location.href)) status("An invitation: Join to take part.", "signed-in");
  });
  show(false);
  button.disabled = false;
  if (config.idp_url === null) status("No IdP is configured: signing in cannot work here.", "error");
  else status("Ready.", "ready");
}

main().catch((error: unknown) => status(describe(error), "error"));
