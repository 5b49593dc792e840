/**
 * Meetings, as `veil.client.meeting`: `Meeting` orchestrates; the rules live in one
 * module each.
 *
 * - `timers`    the timers and the injectable clock
 * - `tasks`     background work that stops, and the waits it needs
 * - `events`    what the application is told (callbacks and async iterators)
 * - `roster`    who is present: each join's announced sender number
 * - `epochs`    which key a client holds and when a key post replaces it
 * - `authority` proofs with the meeting group's key
 * - `chat`      chat messages under the epoch's chat key
 * - `members`   the member lists of key posts, followed or fetched and checked
 * - `manager`   admission, removal, rekeys, the heartbeat and fail-over
 * - `meeting`   `Meeting`: start, join, leave, end, chat, and keys for the media layer
 * - `media-keys` `meetingKeySource`: a Meeting as the media layer's key source
 */

export { ChatMessage } from "./chat.js";
export { securityCode } from "./epochs.js";
export {
  ChatReceived,
  ConnectionChanged,
  Ended,
  EpochChanged,
  EventStream,
  ManagementChanged,
  type MeetingEvent,
  MeetingFailure,
  ParticipantJoined,
  ParticipantLeft,
  Removed,
} from "./events.js";
export type { Admit } from "./manager.js";
export { type MeetingKeys, meetingKeySource } from "./media-keys.js";
export { Meeting, type MeetingOptions, type StartOptions } from "./meeting.js";
export { Participant, Roster } from "./roster.js";
export { Cancelled } from "./tasks.js";
export { type Clock, MeetingTimers, type MeetingTimersInit, systemClock } from "./timers.js";
