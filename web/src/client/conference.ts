/**
 * The conference service's HTTP calls, as `veil.client.conference.ConferenceClient`
 * (the platform's escrow share). The board and media WebSockets are not ported yet.
 */

import { CONFERENCE_AUDIENCE, b64decode } from "../protocol/wire.js";
import { type Fetch, HttpService } from "./http.js";

export class ConferenceClient {
  readonly http: HttpService;
  readonly audience: string;

  constructor(baseUrl: string, options: { audience?: string; fetch?: Fetch } = {}) {
    this.http = new HttpService(baseUrl, options.fetch);
    this.audience = options.audience ?? CONFERENCE_AUDIENCE;
  }

  /** The platform's share of this user's escrow password. */
  async share(token: string): Promise<Uint8Array> {
    const data = (await this.http.send({
      method: "POST",
      path: "/v1/users/me/share",
      headers: { authorization: `Bearer ${token}` },
    })) as { share: string };
    return b64decode(data.share);
  }

  toJSON(): Record<string, string> {
    return { conference: this.http.baseUrl, audience: this.audience };
  }
}
