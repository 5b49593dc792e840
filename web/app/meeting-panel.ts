/**
 * The meeting part of the example page: start a meeting (inviting users by id) or
 * join one from an invitation link; then the participants (who manages), the epoch
 * and its security code, the chat, and leave or end.
 *
 * The panel draws from the meeting's own state (`epoch`, `securityCode`, `roster`,
 * `chat`, `errors`) at every event rather than from the events' contents, so nothing
 * that happened before it listened (a join's first epoch, chat read while admitted) is
 * missed. Once the meeting is over for this device (left, ended, removed) it is
 * closed, which also rotates this device's keys: a later theft of the browser's
 * device opens nothing of this meeting.
 */

import { ConnectionChanged, type Device, Ended, Meeting, MeetingFailure, Removed } from "../src/client/index.js";
import { describe, element, status, textElement } from "./dom.js";
import { invitationLink, invitationText, parseInvitation } from "./invitation-link.js";

type Phase = "in-meeting" | "left" | "ended" | "removed";

const FINISHED: Record<Exclude<Phase, "in-meeting">, string> = {
  left: "You left the meeting.",
  ended: "The meeting ended.",
  removed: "You were removed from the meeting.",
};

/** User ids from what was typed: separated by spaces or commas. */
function userIds(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter((id) => id !== ""))];
}

export class MeetingPanel {
  #device: Device | null = null;
  #meeting: Meeting | null = null;
  #phase: Phase = "in-meeting";
  #board = "connecting";
  #chatShown = 0;
  #ending = false; // this device is ending the meeting: its own end finishes it
  #stopListening: (() => void) | null = null;

  /** `onActive(true)` while this device is in a meeting (the page keeps its device). */
  constructor(private readonly onActive: (active: boolean) => void) {
    this.#on("start-form", "submit", () => this.#start());
    this.#on("join-form", "submit", () => this.#join());
    this.#on("chat-form", "submit", () => this.#send());
    this.#on("leave", "click", () => this.#leave());
    this.#on("end", "click", () => this.#end());
  }

  /** The signed-in device (or `null` once signed out). */
  use(device: Device | null): void {
    this.#device = device;
  }

  /** Fill the join form from the link this page was opened with, if it carries an
   * invitation; whether it did. */
  offer(link: string): boolean {
    if (invitationText(link) === null) return false;
    element<HTMLInputElement>("join-link").value = link;
    return true;
  }

  get active(): boolean {
    return this.#meeting !== null && this.#phase === "in-meeting";
  }

  #on(id: string, event: "submit" | "click", action: () => Promise<void>): void {
    element(id).addEventListener(event, (e) => {
      e.preventDefault();
      action().catch((error: unknown) => status(describe(error), "error"));
    });
  }

  #needDevice(): Device {
    if (this.#device === null) throw new Error("sign in first");
    return this.#device;
  }

  async #busy<T>(what: string, work: () => Promise<T>): Promise<T> {
    const forms = ["start-button", "join-button"].map((id) => element<HTMLButtonElement>(id));
    for (const button of forms) button.disabled = true;
    this.onActive(true);
    status(what, "busy");
    try {
      return await work();
    } finally {
      for (const button of forms) button.disabled = false;
      this.onActive(this.active);
    }
  }

  async #start(): Promise<void> {
    const device = this.#needDevice();
    const invitees = userIds(element<HTMLInputElement>("invitees").value);
    const meeting = await this.#busy("Starting a meeting…", () => Meeting.start(device, { invitees }));
    this.#show(meeting);
    status("The meeting started: send the invitation link to the people you invited.", "signed-in");
  }

  async #join(): Promise<void> {
    const device = this.#needDevice();
    const invitation = parseInvitation(element<HTMLInputElement>("join-link").value);
    const meeting = await this.#busy(`Joining ${invitation.meetingId}: waiting to be admitted…`, () =>
      Meeting.join(device, invitation),
    );
    this.#show(meeting);
    status(`You joined ${meeting.meetingId}.`, "signed-in");
  }

  async #send(): Promise<void> {
    const input = element<HTMLInputElement>("chat-text");
    const text = input.value;
    if (this.#meeting === null || text === "") return;
    // Cleared before the send, not after it: what is typed while the post is on its way
    // is the next message. The sent one shows in the log when the board delivers it back.
    input.value = "";
    try {
      await this.#meeting.sendChat(text);
    } catch (error) {
      if (input.value === "") input.value = text; // not sent: give it back to edit
      throw error;
    }
  }

  async #leave(): Promise<void> {
    if (this.#meeting === null) return;
    await this.#meeting.leave();
    await this.#finish("left");
  }

  async #end(): Promise<void> {
    if (this.#meeting === null) return;
    this.#ending = true;
    try {
      await this.#meeting.end();
    } finally {
      this.#ending = false;
    }
    await this.#finish("ended");
  }

  // --- the meeting's lifetime ------------------------------------------------------------

  #show(meeting: Meeting): void {
    this.#meeting = meeting;
    this.#phase = "in-meeting";
    this.#board = "connected";
    this.#chatShown = 0;
    element("chat-log").replaceChildren();
    element("problems").replaceChildren();
    for (const error of meeting.errors) this.#problem(error); // while joining
    const link = element<HTMLAnchorElement>("invitation-link");
    link.href = link.textContent = invitationLink(meeting.invitation);
    element("meeting-id").textContent = meeting.meetingId;
    this.#stopListening = meeting.events.on((event) => {
      if (event instanceof MeetingFailure) this.#problem(event.error);
      if (event instanceof ConnectionChanged && event.channel === "board") this.#board = event.state;
      if (event instanceof Ended && !this.#ending) void this.#finish("ended").catch((e: unknown) => status(describe(e), "error"));
      if (event instanceof Removed) void this.#finish("removed").catch((e: unknown) => status(describe(e), "error"));
      this.#render();
    });
    element("meeting-choose").hidden = true;
    element("meeting-live").hidden = false;
    this.onActive(true);
    this.#render();
  }

  /** Over for this device: draw the last state, stop listening, close the meeting
   * (which rotates this device's keys), and offer start and join again. */
  async #finish(phase: Exclude<Phase, "in-meeting">): Promise<void> {
    const meeting = this.#meeting;
    if (meeting === null || this.#phase !== "in-meeting") return;
    this.#phase = phase;
    this.#stopListening?.();
    this.#stopListening = null;
    this.#render();
    element("meeting-choose").hidden = false;
    this.onActive(false);
    status(`${FINISHED[phase]} Rotating this device's keys…`, "busy");
    await meeting.close();
    status(`${FINISHED[phase]} This device's keys were rotated.`, "signed-in");
  }

  #problem(error: unknown): void {
    element("problems-title").hidden = false;
    element("problems").append(textElement("li", describe(error)));
  }

  #render(): void {
    const meeting = this.#meeting;
    if (meeting === null) return;
    const live = element("meeting-live");
    const inMeeting = this.#phase === "in-meeting";
    live.dataset.state = this.#phase;
    live.dataset.epoch = meeting.epoch?.toString() ?? "";
    element("meeting-state").textContent = inMeeting
      ? meeting.managing
        ? "in the meeting; this device manages it"
        : "in the meeting"
      : FINISHED[this.#phase as Exclude<Phase, "in-meeting">];
    element("epoch").textContent = inMeeting ? (meeting.epoch?.toString() ?? "none yet") : "—";
    element("security-code").textContent = inMeeting ? meeting.securityCode : "—";
    element("connection").textContent = this.#board;
    this.#participants(meeting, inMeeting);
    this.#chat(meeting);
    element<HTMLButtonElement>("leave").disabled = !inMeeting || meeting.managing;
    element<HTMLButtonElement>("end").disabled = !inMeeting || !meeting.managing;
    element<HTMLButtonElement>("chat-send").disabled = !inMeeting;
  }

  #participants(meeting: Meeting, inMeeting: boolean): void {
    const manager = meeting.epochs.manager;
    const items = inMeeting
      ? meeting.roster.participants().map((p) => {
          const item = textElement("li", p.userId, "participant");
          const notes = [
            ...(p.deviceId === meeting.device.deviceId ? ["this device"] : []),
            ...(p.deviceId === manager ? ["manages"] : []),
            ...(p.userId === meeting.host ? ["host"] : []),
          ];
          if (notes.length) item.append(textElement("span", ` (${notes.join(", ")})`, "notes"));
          item.dataset.user = p.userId;
          if (p.deviceId === manager) item.dataset.manages = "";
          return item;
        })
      : [];
    element("participants").replaceChildren(...items);
  }

  /** Appends the messages not shown yet (the chat only grows). */
  #chat(meeting: Meeting): void {
    const log = element("chat-log");
    for (const message of meeting.chat.slice(this.#chatShown)) {
      const item = document.createElement("li");
      item.append(textElement("span", message.userId, "chat-user"), textElement("span", message.text, "chat-text"));
      item.dataset.epoch = message.epoch.toString();
      log.append(item);
    }
    this.#chatShown = meeting.chat.length;
  }
}
