/**
 * The little the example page needs of the DOM: its elements by id, the status line,
 * and how an error is shown. Text only ever goes in as `textContent`: nothing a user or
 * another participant typed is parsed as HTML.
 */

export function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

export type State = "loading" | "ready" | "busy" | "signed-in" | "signed-out" | "error";

/** The status line; its `data-state` is for tests and styles, its text for people. */
export function status(text: string, state: State): void {
  const line = element("status");
  line.textContent = text;
  line.dataset.state = state;
}

/** An error as people read it: the SDK's named errors (`NotAdmitted`, `UntrustedPost`,
 * `Unavailable`, …) say what went wrong by name, and their messages carry ids and
 * causes, never a secret. */
export function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** A new element holding `text` as text. */
export function textElement(tag: string, text: string, className?: string): HTMLElement {
  const made = document.createElement(tag);
  made.textContent = text;
  if (className !== undefined) made.className = className;
  return made;
}
