/**
 * Tokens from Veil's dev IdP (`veil serve`'s, `POST /token`), for the tests in Node
 * and in a browser page alike (no Node-only import here).
 */

import type { TokenSource } from "../src/client/index.js";

/** The dev IdP's tokens for `sub`, one per audience asked. */
export function devIdpTokens(idpUrl: string, sub: string): TokenSource {
  return async (audience) => {
    const response = await fetch(new URL("/token", idpUrl), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sub, audience }),
    });
    if (!response.ok) throw new Error(`the dev IdP refused a token: ${response.status}`);
    return ((await response.json()) as { token: string }).token;
  };
}
