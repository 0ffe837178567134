"""Quiet hours by China time, one message per event and person, and the state a message is written in."""

import uuid
from datetime import UTC, datetime, time

import pytest
from notification.adapters.tables import Recipient
from notification.domain.messages import Notice, initial_status, message_id, one_per_event
from notification.domain.schedule import QuietHours
from notification.domain.templates import Facts, Moment

NIGHT = QuietHours.parse("21:00-08:00")


def utc(hour: int, minute: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(("at", "quiet", "sent_at"), [
    (utc(4), False, utc(4)),  # 12:00 CST
    (utc(12, 59), False, utc(12, 59)),  # 20:59 CST
    (utc(13), True, utc(0, day=3)),  # 21:00 CST: waits until 08:00 CST the next day
    (utc(15, 30), True, utc(0, day=3)),  # 23:30 CST
    (utc(16), True, utc(0, day=3)),  # 00:00 CST, the next day already
    (utc(23, 59, day=2), True, utc(0, day=3)),  # 07:59 CST
    (utc(0, day=3), False, utc(0, day=3)),  # 08:00 CST: the window is closed at its end
])
def test_a_message_written_at_night_waits_for_the_morning(at: datetime, quiet: bool, sent_at: datetime) -> None:
    assert NIGHT.is_quiet(at) is quiet
    assert NIGHT.next_allowed(at) == sent_at


def test_a_window_within_one_day() -> None:
    lunch = QuietHours.parse("12:00-13:30")
    assert lunch.is_quiet(utc(4, 10)) and not lunch.is_quiet(utc(5, 30))
    assert lunch.next_allowed(utc(4, 10)) == utc(5, 30)


@pytest.mark.parametrize("text", ["off", "", "none", " OFF "])
def test_quiet_hours_can_be_off(text: str) -> None:
    off = QuietHours.parse(text)
    assert not off.is_quiet(utc(16)) and off.next_allowed(utc(16)) == utc(16) and str(off) == "off"


@pytest.mark.parametrize("text", ["21-8", "21:00", "08:00-08:00", "25:00-08:00"])
def test_unreadable_quiet_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        QuietHours.parse(text)


def test_parsed_quiet_hours() -> None:
    assert (NIGHT.start, NIGHT.end, str(NIGHT)) == (time(21), time(8), "21:00-08:00 CST")


def notice(event_id: uuid.UUID, ref: str, moment: Moment = Moment.APPROVED) -> Notice:
    return Notice(event_id, ref, moment, Facts())


def test_the_same_event_for_the_same_person_is_always_the_same_message() -> None:
    event, a, b = uuid.uuid4(), "a" * 64, "b" * 64
    assert message_id(event, a) == message_id(event, a)
    assert message_id(event, a) != message_id(event, b)
    assert message_id(event, a) != message_id(uuid.uuid4(), a)


def test_a_batch_holding_an_event_twice_writes_one_message() -> None:
    first, second, ref = uuid.uuid4(), uuid.uuid4(), "c" * 64
    kept = one_per_event([notice(first, ref), notice(second, ref, Moment.PAID), notice(first, ref),
                          notice(first, "d" * 64)])
    assert [(n.event_id, n.person_ref, n.moment) for n in kept] == [
        (first, ref, Moment.APPROVED), (second, ref, Moment.PAID), (first, "d" * 64, Moment.APPROVED)]


@pytest.mark.parametrize(("contact", "status"), [
    (None, "held"),  # nothing known about the person yet: waits for a phone
    (Recipient(person_ref="a", contact_version=0, account_masked="6222****0001"), "held"),  # an account only
    (Recipient(person_ref="a", contact_version=1, phone_ciphertext="c:x"), "pending"),
    (Recipient(person_ref="a", contact_version=2, phone_ciphertext="c:x", sms_opt_out=True), "suppressed"),
    (Recipient(person_ref="a", contact_version=2, sms_opt_out=True), "suppressed"),
])
def test_a_message_is_written_pending_only_for_a_person_who_can_and_wants_to_be_texted(
        contact: Recipient | None, status: str) -> None:
    assert initial_status(contact) == status
