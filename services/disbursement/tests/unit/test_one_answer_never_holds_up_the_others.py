"""The resolver applies a pass's bank answers together; one that cannot be applied is set aside, the others land."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
from disbursement.domain.payment import BankWord
from disbursement.service_layer import sender
from disbursement.service_layer.payments import Answer


class FakeDatabase:
    def __init__(self) -> None:
        self.committed: list[list[str]] = []

    @asynccontextmanager
    async def units(self) -> AsyncIterator[list[str]]:
        pending: list[str] = []
        yield pending  # the "unit of work": what this transaction applied
        self.committed.append(pending)


async def test_a_poisoned_answer_is_set_aside_and_the_rest_are_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    async def apply(session: list[str], answers: Sequence[Answer], quiet_after_s: float) -> list[str]:
        if any(a.key == "poison-1" for a in answers):
            raise ValueError("cannot be applied")
        session.extend(a.key for a in answers)
        return [a.key for a in answers if a.word is BankWord.ACCEPTED]

    monkeypatch.setattr(sender, "apply_bank_answers", apply)
    db = FakeDatabase()
    answers = [Answer("a-1", BankWord.SETTLED), Answer("poison-1", BankWord.SETTLED),
               Answer("b-1", BankWord.ACCEPTED), Answer("c-1", BankWord.FAILED)]
    recalls, left = await sender.apply_safely(db.units, answers, quiet_after_s=60)  # type: ignore[arg-type]
    assert [a.key for a in left] == ["poison-1"]
    assert recalls == ["b-1"]
    assert db.committed == [["a-1"], ["b-1"], ["c-1"]], "each good answer committed, the pass not rolled back"


async def test_a_pass_that_applies_commits_once(monkeypatch: pytest.MonkeyPatch) -> None:
    async def apply(session: list[str], answers: Sequence[Answer], quiet_after_s: float) -> list[str]:
        session.extend(a.key for a in answers)
        return []

    monkeypatch.setattr(sender, "apply_bank_answers", apply)
    db = FakeDatabase()
    assert await sender.apply_safely(db.units, [Answer("a-1", BankWord.SETTLED),  # type: ignore[arg-type]
                                                Answer("b-1", BankWord.SETTLED)], quiet_after_s=60) == ([], [])
    assert db.committed == [["a-1", "b-1"]]
