/**
 * Invitation links: this page's URL with the invitation in the fragment,
 * `…/app/#invite=veil-meeting-v1:<meeting id>:<group key>`. A fragment is never sent
 * in a request, so the invitation reaches no server's log (and the page sends no
 * `Referer`). Its text form needs no escaping there: base64url and the meeting id's
 * characters are all allowed in a fragment as they are.
 */

import { Invitation } from "../src/client/index.js";

const PARAMETER = "invite";

/** The link that opens this page on `invitation`. */
export function invitationLink(invitation: Invitation, page: string = location.href): string {
  const url = new URL(page);
  url.hash = `${PARAMETER}=${invitation.toString()}`;
  return url.href;
}

/** The invitation text in a link (or in a fragment alone), or `null` if it has none. */
export function invitationText(link: string): string | null {
  const hash = link.includes("#") ? link.slice(link.indexOf("#") + 1) : "";
  return new URLSearchParams(hash).get(PARAMETER);
}

/** The invitation a link (or the bare text form) carries; `RangeError` saying what is
 * wrong with it otherwise (the SDK's strict parser). */
export function parseInvitation(input: string): Invitation {
  const text = input.trim();
  return Invitation.parse(invitationText(text) ?? text);
}
