"""The meeting's rules on their own, without services: the roster, epochs and events."""

import asyncio

import pytest

from veil.client.errors import UntrustedPost
from veil.client.meeting import Ended, EventStream, MeetingFailure, MeetingTimers
from veil.client.meeting.epochs import Epochs
from veil.client.meeting.roster import Roster
from veil.crypto.keys import Plaintext


def test_a_sender_number_belongs_to_the_device_that_announced_it_first() -> None:
    roster = Roster()
    roster.announce(7, "bob", "bob-laptop", seq=1)
    with pytest.raises(UntrustedPost):
        roster.announce(7, "mallory", "mallory-phone", seq=2)
    assert roster.leave(7, "mallory-phone") is None  # no one leaves for another
    assert roster.sender_of("bob-laptop") == 7
    # A device that joins again replaces its earlier join; its old number stays its own.
    roster.announce(9, "bob", "bob-laptop", seq=3)
    assert roster.sender_of("bob-laptop") == 9 and roster.get(7) is None
    with pytest.raises(UntrustedPost):
        roster.announce(7, "carol", "carol-phone", seq=4)


def test_departed_users_are_those_who_left_with_no_device_present() -> None:
    roster = Roster()
    roster.announce(1, "bob", "laptop", seq=1)
    roster.announce(2, "bob", "phone", seq=2)
    roster.announce(3, "carol", "carol", seq=3)
    roster.leave(1, "laptop")
    assert roster.departed() == set()  # bob is still here on his phone
    roster.leave(2, "phone")
    roster.leave(3, "carol")
    assert roster.departed() == {"bob", "carol"}
    roster.announce(4, "carol", "carol", seq=5)  # carol is back
    assert roster.departed() == {"bob"}
    assert [p.sender for p in roster.participants()] == [4]


def test_the_first_key_post_of_an_epoch_in_board_order_wins_and_closing_takes_none() -> None:
    epochs = Epochs("m")
    first = epochs.install(0, 5, Plaintext.generate(), ["a"], "dev-a")
    assert first is not None and epochs.manager == "dev-a"
    assert epochs.install(0, 9, Plaintext.generate(), ["a"], "dev-b") is None  # later
    assert epochs.install(0, 3, Plaintext.generate(), ["a"], "dev-b") is not None  # earlier
    assert epochs.manager == "dev-b" and epochs.held() == 1
    epochs.install(1, 12, Plaintext.generate(), ["a"], "dev-b")
    assert epochs.held() == 2 and epochs.key(0) is not None  # the previous epoch stays
    epochs.install(2, 14, Plaintext.generate(), ["a"], "dev-b")
    assert epochs.key(0) is None and epochs.held() == 2
    epochs.close()
    assert epochs.held() == 0 and not epochs.supersedes(3, 20)
    assert epochs.install(3, 20, Plaintext.generate(), ["a"], "dev-b") is None


def test_events_reach_subscribers_and_a_failing_callback_stops_nothing() -> None:
    async def main() -> None:
        stream = EventStream()
        seen: list[object] = []
        caught: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, context: caught.append(context))

        def broken(event: object) -> None:
            raise RuntimeError("the application's bug")

        stream.on(broken)
        stream.on(seen.append)
        events = stream.subscribe()
        stream.fail(ValueError("a post was refused"))
        stream.emit(Ended())
        assert isinstance(await anext(events), MeetingFailure)
        assert isinstance(await anext(events), Ended)
        assert len(seen) == 2 and len(caught) == 2
        assert [type(e) for e in stream.failures] == [ValueError]

    asyncio.run(main())


def test_fail_over_must_outlast_the_heartbeat() -> None:
    with pytest.raises(ValueError, match="failover"):
        MeetingTimers(heartbeat=5.0, failover=5.0)
