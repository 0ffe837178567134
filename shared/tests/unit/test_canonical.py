"""One canonical form at the edge: national IDs, dates, amounts and codes, table by table."""

from datetime import date, datetime

import pytest
from pydantic import BaseModel, ValidationError
from stdnum.cn import ric

from shared.canonical import NotCanonical, canonical_national_id, iso_date
from shared.contracts.types import DISTRICT_CODE_PATTERN, IsoDate, Money, NationalId
from shared.security.crypto import person_ref

VALID = "310110198001011236"
FULL_WIDTH = "".join(chr(ord(c) + 0xFEE0) for c in VALID)  # ３１０１１０…


@pytest.mark.parametrize(("typed", "canonical"), [
    (VALID, VALID),
    (FULL_WIDTH, VALID),
    (f"  {VALID}\t", VALID),
    ("11010519491231002x", "11010519491231002X"),
    ("11010519491231002ｘ", "11010519491231002X"),  # full-width lower-case x
    ("11010519491231002X", "11010519491231002X"),
])
def test_every_spelling_of_one_id_is_one_id(typed: str, canonical: str) -> None:
    assert canonical_national_id(typed) == canonical
    assert person_ref(b"p", typed) == person_ref(b"p", canonical), "one person, one pseudonym"


@pytest.mark.parametrize("typed", [
    VALID[:-1] + "7",                                     # check digit
    "".join(chr(ord(c) - ord("0") + 0x0660) for c in VALID),  # Arabic-Indic digits: refused, not mapped
    "659913198001011236"[:-1] + "X",                      # not even the right check digit
    "65991319800101123" + "6",                            # valid check digit, a place stdnum cannot resolve
    "310110198013011239",                                 # month 13
    "310110-19800101-1236",
    "31011019800101123",                                  # 17 characters
    VALID + "0",
    "",
    None, 310110198001011236, ["x"],
])
def test_anything_else_is_refused_without_echoing_it(typed: object) -> None:
    with pytest.raises(NotCanonical) as raised:
        canonical_national_id(typed)
    assert str(typed) not in str(raised.value) or typed in ("", None)


def test_the_id_check_agrees_with_python_stdnum_on_every_kind_of_number() -> None:
    """The check keeps ric.validate's rules with its place lookup cached: thousands of drawn numbers, right and
    wrong in each part (place, year, month, day, check digit), get stdnum's own verdict."""
    import random

    rng = random.Random(14)
    places = ["310110", "110101", "659913", "000000", "110105", "440301", "510107", "990000", "320106"]
    verdicts = set()
    for _ in range(3000):
        body = (rng.choice(places) if rng.random() < 0.8 else f"{rng.randrange(10**6):06d}") + (
            f"{rng.randrange(1890, 2030)}{rng.randrange(0, 14):02d}{rng.randrange(0, 33):02d}{rng.randrange(1000):03d}")
        right = ric.calc_check_digit(body + "0")
        number = body + (right if rng.random() < 0.7 else rng.choice("0123456789X"))
        try:
            canonical_national_id(number)
            ours = True
        except NotCanonical:
            ours = False
        try:
            theirs = bool(ric.validate(number))
        except Exception:  # noqa: BLE001 - KeyError for some unknown places, not stdnum's ValidationError
            theirs = False
        assert ours == theirs, number
        verdicts.add(ours)
    assert verdicts == {True, False}


@pytest.mark.parametrize(("typed", "ok"), [
    ("2026-03-01", True), (date(2026, 3, 1), True),
    (1772323200, False), ("1772323200", False), ("2026-03-01T00:00:00", False), (datetime(2026, 3, 1), False),
    ("２０２６-０３-０１", False), ("2026-3-1", False), ("2026-02-30", False), (None, False),
])
def test_dates_are_yyyy_mm_dd_only(typed: object, ok: bool) -> None:
    if ok:
        assert iso_date(typed) == date(2026, 3, 1)
    else:
        with pytest.raises(NotCanonical):
            iso_date(typed)


class Edge(BaseModel):
    national_id: NationalId
    on: IsoDate
    amount: Money


@pytest.mark.parametrize(("field", "value"), [
    ("amount", "１２.３４"), ("amount", "١٢.٣٤"), ("amount", 12.34), ("on", 1772323200), ("on", "2026-03-01T00:00"),
    ("national_id", "٣" * 18),
])
def test_models_refuse_other_digits_and_forms(field: str, value: object) -> None:
    good: dict[str, object] = {"national_id": FULL_WIDTH, "on": "2026-03-01", "amount": "12.34"}
    assert Edge.model_validate(good).national_id == VALID
    with pytest.raises(ValidationError) as raised:
        Edge.model_validate({**good, field: value})
    assert [e["loc"] for e in raised.value.errors()] == [(field,)]


def test_area_code_patterns_are_ascii() -> None:
    import re

    assert re.fullmatch(DISTRICT_CODE_PATTERN[1:-1], "310110")
    assert not re.fullmatch(DISTRICT_CODE_PATTERN[1:-1], "３１０１１０")


@pytest.mark.parametrize(("born", "ok"), [("2010", True), ("2011", False), ("1990", True), ("2011", False)])
def test_a_birth_place_counts_only_for_the_years_it_existed(born: str, ok: bool) -> None:
    """Beijing's Chongwen district (110103) was merged away in 2010: the place is checked per birth year,
    also when the answer for another year was looked up (and kept) before."""
    body = f"110103{born}0601001"
    typed = body + ric.calc_check_digit(body + "0")
    if ok:
        assert canonical_national_id(typed) == typed
    else:
        with pytest.raises(NotCanonical):
            canonical_national_id(typed)
