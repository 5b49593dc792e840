"""Meetings: ``Meeting`` orchestrates; the rules live in one module each.

- ``timers``    the timers and the injectable clock
- ``events``    what the application is told (callbacks and async iterators)
- ``roster``    who is present: each join's announced sender number
- ``epochs``    which key a client holds and when a key post replaces it
- ``authority`` proofs with the meeting group's key
- ``chat``      chat messages under the epoch's chat key
- ``manager``   admission, removal, rekeys, the heartbeat and fail-over
- ``meeting``   ``Meeting``: start, join, leave, end, media and chat
"""

from veil.client.meeting.chat import ChatMessage
from veil.client.meeting.epochs import security_code
from veil.client.meeting.events import (
    ChatReceived,
    ConnectionChanged,
    Ended,
    EpochChanged,
    EventStream,
    ManagementChanged,
    MeetingEvent,
    MeetingFailure,
    ParticipantJoined,
    ParticipantLeft,
    Removed,
)
from veil.client.meeting.manager import Admit
from veil.client.meeting.meeting import Meeting
from veil.client.meeting.timers import Clock, MeetingTimers, SystemClock

__all__ = [
    "Admit", "ChatMessage", "ChatReceived", "Clock", "ConnectionChanged", "Ended",
    "EpochChanged", "EventStream", "ManagementChanged", "Meeting", "MeetingEvent",
    "MeetingFailure", "MeetingTimers", "ParticipantJoined", "ParticipantLeft", "Removed",
    "SystemClock", "security_code",
]  # fmt: skip
