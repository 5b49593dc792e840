/**
 * One call to a service over `fetch`, as `veil.client.keyserver.send`: the JSON of a
 * success, or the `ServiceError` its stable code names; a network failure becomes
 * `Unavailable` naming the URL (without its query) and the cause, never a secret.
 */

import { Unavailable, serviceError } from "./errors.js";

export type Fetch = typeof globalThis.fetch;

export interface Request {
  method: string;
  /** The path as sent (each id made with `pathSegment`), with its query if any. */
  path: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
}

/** A service's base URL and the `fetch` that reaches it. */
export class HttpService {
  constructor(
    readonly baseUrl: string,
    readonly fetch: Fetch = globalThis.fetch.bind(globalThis),
  ) {}

  url(path: string): URL {
    return new URL(path, this.baseUrl.endsWith("/") ? this.baseUrl : `${this.baseUrl}/`);
  }

  async send(request: Request): Promise<unknown> {
    const url = this.url(request.path);
    let response: Response;
    try {
      const init: RequestInit = { method: request.method, headers: request.headers ?? {} };
      if (request.body !== undefined) init.body = Uint8Array.from(request.body);
      response = await this.fetch(url, init);
    } catch (error) {
      const where = new URL(url);
      where.search = "";
      throw new Unavailable(0, "unreachable", `${request.method} ${where.href}: ${causeOf(error)}`);
    }
    return result(response);
  }
}

/** What the network stack says went wrong (undici puts it in `cause`). */
function causeOf(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  if (cause instanceof Error) return cause.message || cause.name;
  return String(cause);
}

export async function result(response: Response): Promise<unknown> {
  const text = await response.text();
  if (response.ok) return JSON.parse(text);
  let code = "http_error";
  let message = response.statusText;
  try {
    const error = (JSON.parse(text) as { error: { code: unknown; message: unknown } }).error;
    if (error.code !== undefined && error.message !== undefined) {
      code = String(error.code);
      message = String(error.message);
    }
  } catch {
    // not a Veil error body: the status names the error
  }
  throw serviceError(response.status, code, message);
}
