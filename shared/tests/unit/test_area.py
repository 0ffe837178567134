"""The one area rule: who may see which person, case or payment; and what a token's claims may hold."""

import pytest

from shared.errors import NotFound
from shared.problems import ProblemError
from shared.security.area import Area
from shared.security.staff_auth import Principal, Role, principal_from_claims

CLERK = Principal("c", Role.clerk, "310110", "310110001")
REVIEWER = Principal("r", Role.district_reviewer, "310110", None)
CITY_OFFICER = Principal("o", Role.registry_officer, None, None)
DISTRICT_OFFICER = Principal("o", Role.registry_officer, "310110", None)


@pytest.mark.parametrize(("principal", "district", "subdistrict", "inside"), [
    (CLERK, "310110", "310110001", True),
    (CLERK, "310110", "310110002", False),   # the neighbouring sub-district
    (CLERK, "310115", "310115001", False),
    (CLERK, None, None, False),               # a person whose area is unknown is nobody's to see
    (REVIEWER, "310110", "310110002", True),
    (REVIEWER, "310115", "310115001", False),
    (REVIEWER, None, None, False),
    (DISTRICT_OFFICER, "310110", "310110009", True),
    (DISTRICT_OFFICER, "310115", "310115001", False),
    (CITY_OFFICER, "310115", "310115001", True),
    (CITY_OFFICER, None, None, True),
    (Principal("p", Role.ops, None, None), "310115", "310115001", True),
    (Principal("p", Role.policy_admin, "310110", None), "310115", None, True),
    # a reviewer's token that also names a sub-district still reviews the whole district
    (Principal("r", Role.district_reviewer, "310110", "310110001"), "310110", "310110002", True),
])
def test_who_sees_whom(principal: Principal, district: str | None, subdistrict: str | None, inside: bool) -> None:
    assert principal.area.contains(district, subdistrict) is inside
    missing = NotFound("case_not_found", "no such case", field="case_id")
    if inside:
        principal.area.require(district, subdistrict, missing)
    else:
        with pytest.raises(NotFound) as raised:
            principal.area.require(district, subdistrict, missing)
        assert raised.value is missing


def test_query_conditions_follow_the_same_rule() -> None:
    from sqlalchemy import column

    assert Area().where(column("d"), column("s")) == []
    [only] = REVIEWER.area.where(column("d"), column("s"))
    assert str(only.compile(compile_kwargs={"literal_binds": True})) == "d = '310110'"
    clauses = [str(c.compile(compile_kwargs={"literal_binds": True})) for c in CLERK.area.where(column("d"))]
    assert clauses == ["d = '310110'", "false"], "a table without sub-districts shows a clerk nothing"


BASE = {"sub": "staff-1", "role": "clerk", "district": "310110", "subdistrict": "310110001"}


@pytest.mark.parametrize(("change", "accepted"), [
    ({}, True),
    ({"district": ["310110"]}, False),
    ({"district": 310110}, False),
    ({"district": "３１０１１０"}, False),    # full-width digits are no district code
    ({"district": "31011"}, False),
    ({"subdistrict": {"code": "310110001"}}, False),
    ({"subdistrict": "310115001"}, False),   # not in the token's district
    ({"role": ["clerk"]}, False),
    ({"role": {"clerk": 1}}, False),
    ({"role": "root"}, False),
    ({"sub": 12}, False),
    ({"sub": "a" * 65}, False),
    ({"sub": "line\nbreak"}, False),
    ({"role": "ops", "district": None, "subdistrict": None}, True),
    ({"role": "district_reviewer", "subdistrict": None}, True),
    ({"role": "district_reviewer", "district": None, "subdistrict": None}, False),
])
def test_claims_are_parsed_defensively(change: dict[str, object], accepted: bool) -> None:
    claims = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    if accepted:
        assert principal_from_claims(claims).subject == "staff-1"
    else:
        with pytest.raises(ProblemError) as raised:
            principal_from_claims(claims)
        assert (raised.value.status, raised.value.code) == (401, "token_invalid")
