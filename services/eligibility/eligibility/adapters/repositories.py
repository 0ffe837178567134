"""Eligibility's repositories: the registry (persons, category periods, consents), contacts, screenings and policy
terms in and out of PostgreSQL. A method is one statement per table for however many rows (arrays through
`unnest` for the registry import's upserts, chunked elsewhere where PostgreSQL's parameter limit needs it); none
commits (the unit of work does)."""

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel, col

from eligibility.adapters.tables import (
    ConsentRow,
    ContactRow,
    PersonRow,
    PolicyTermsRow,
    RegistryPeriodRow,
    ScreeningRow,
)
from eligibility.domain.rules import Consent, Facts, PersonArea, PolicyTerms, RegistryPeriod, Screening
from shared.contracts.events import PolicyPublished
from shared.contracts.types import ConsentLookback
from shared.db import LOCK_PERSON, as_arrays, in_array, insert_arrays, lock_keys

_CHUNK = 1000  # rows per statement: PostgreSQL takes at most 32767 parameters in one


def _chunks(rows: list[dict[str, Any]], size: int = _CHUNK) -> list[list[dict[str, Any]]]:
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def _unnest_upsert(table: str, columns: dict[str, str], conflict: str, update_columns: Iterable[str]) -> str:
    """One INSERT of every row, each column an array parameter (named as the column, of the given type), upserted
    on `conflict`: the statement text is the same for one row or 5,000, so it is prepared once per connection
    and costs no per-row compiling or parameters (a multi-row VALUES cost ~60 us a row in SQLAlchemy)."""
    arrays = ", ".join(f"CAST(:{c} AS {t}[])" for c, t in columns.items())
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in update_columns)
    return (f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT {conflict} DO UPDATE SET {updates}")


_PERSON_COLUMNS = {"person_ref": "text", "national_id_enc": "text", "name_enc": "text", "district_code": "text",
                   "subdistrict_code": "text", "bank_account_enc": "text", "bank_account_fingerprint": "text",
                   "account_masked": "text", "account_version": "int", "updated_at": "timestamptz"}
_SAVE_PERSONS = text(_unnest_upsert("person", _PERSON_COLUMNS, "(person_ref)", list(_PERSON_COLUMNS)[1:]))
_PERIOD_COLUMNS = {"person_ref": "text", "category": "text", "valid_from": "date", "valid_to": "date"}
_SAVE_PERIODS = text(_unnest_upsert("registry_period", _PERIOD_COLUMNS, "ON CONSTRAINT uq_registry_period",
                                    ["valid_to"]))


# Screening's facts of a batch's persons in one round trip, a row per fact: kind, person (a policy's id for
# terms), two texts, two dates, a number. Four statements (person, period, consent, terms) cost ~4x the
# driver's and the server's per-statement work for the same rows. Each table is joined to the batch's refs
# (`r`, read once) rather than filtered by `= ANY(:refs)`: the plan of that filter depended on the plan cache
# (the first five executions on each connection got custom plans that, seeing ~500 refs, chose parallel
# sequential scans of person and registry_period, 50-70 ms a batch against 10 for the later generic plan);
# a join on `unnest` plans as a nested loop of index lookups every time, and the person lookup the policy
# terms need is the areas' own (`a`), not a second one.
_FACTS = text("""
    WITH r AS MATERIALIZED (SELECT DISTINCT unnest(CAST(:refs AS text[])) AS ref),
         a AS MATERIALIZED (SELECT p.person_ref, p.district_code, p.subdistrict_code
                              FROM r JOIN person p ON p.person_ref = r.ref)
    SELECT 'a', person_ref, district_code, subdistrict_code, NULL::date, NULL::date, NULL::int FROM a
    UNION ALL
    SELECT 'p', g.person_ref, g.category, NULL, g.valid_from, g.valid_to, NULL
      FROM r JOIN registry_period g ON g.person_ref = r.ref
    UNION ALL
    SELECT 'c', c.person_ref, NULL, NULL, c.signed_on, c.revoked_on, NULL
      FROM r JOIN consent c ON c.person_ref = r.ref
    UNION ALL
    SELECT 't', policy_id, region_code, consent_lookback, effective_from, effective_to, version
      FROM policy_terms WHERE region_code IN (SELECT district_code FROM a)""")


@dataclass(frozen=True)
class AccountOnFile:
    """The bank account a person's entry holds now (encrypted), kept when a record brings none."""

    bank_account_enc: str | None
    bank_account_fingerprint: str | None
    account_masked: str | None
    account_version: int


@dataclass(frozen=True)
class PersonEntry:
    """A registry entry as the case view needs it (identity still encrypted)."""

    person_ref: str
    national_id_enc: str
    name_enc: str
    district_code: str
    subdistrict_code: str
    account_version: int


@dataclass(frozen=True)
class PersonRecords:
    """A set of persons' registry entries with their periods and consents, oldest first."""

    persons: list[PersonEntry]
    periods: dict[str, list[RegistryPeriod]]
    consents: dict[str, list[Consent]]


class RegistryRepository:
    """Persons, their category periods and their consents."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self, refs: Iterable[str]) -> None:
        """Changes to these persons take turns until the transaction ends (imports and consents of the same
        persons at once)."""
        await lock_keys(self.session, LOCK_PERSON, refs)

    async def person(self, ref: str) -> PersonRow | None:
        return await self.session.get(PersonRow, ref)

    async def accounts_locked(self, refs: Collection[str]) -> dict[str, AccountOnFile]:
        """The accounts on file of those of these persons the registry lists, their entries locked."""
        rows = await self.session.execute(text(
            "SELECT person_ref, bank_account_enc, bank_account_fingerprint, account_masked, account_version "
            "FROM person WHERE person_ref = ANY(CAST(:refs AS text[])) FOR UPDATE"), {"refs": list(refs)})
        return {ref: AccountOnFile(*account) for ref, *account in rows.all()}

    async def districts(self, refs: Collection[str]) -> dict[str, str]:
        """Where the registry lists each of these persons now."""
        rows = await self.session.execute(select(col(PersonRow.person_ref), col(PersonRow.district_code))
                                          .where(in_array(col(PersonRow.person_ref), refs)))
        return {ref: district for ref, district in rows.all()}

    async def save_persons(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert whole entries (every column of `person`; one row per person): one statement."""
        if rows:
            await self.session.execute(_SAVE_PERSONS, as_arrays(rows, _PERSON_COLUMNS))

    async def save_periods(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert category periods (one per person, category and start; a later end date replaces the last):
        one statement, for rows distinct in (person, category, start)."""
        if rows:
            await self.session.execute(_SAVE_PERIODS, as_arrays(rows, _PERIOD_COLUMNS))

    async def facts(self, refs: Iterable[str]) -> Facts:
        """What screening needs of these persons, in one statement (`_FACTS`): their areas, periods and consents,
        and the policy terms of their districts (read per batch, never cached, so replicas agree the moment a
        version is stored)."""
        facts = Facts()
        for kind, ref, s1, s2, d1, d2, n in (await self.session.execute(_FACTS, {"refs": list(refs)})).all():
            if kind == "a":
                facts.areas[ref] = PersonArea(s1, s2)
            elif kind == "p":
                facts.periods.setdefault(ref, []).append(RegistryPeriod(s1, d1, d2))
            elif kind == "c":
                facts.consents.setdefault(ref, []).append(Consent(d1, d2))
            else:
                facts.terms.append(PolicyTerms(ref, n, s1, d1, d2, ConsentLookback(s2)))
        return facts

    async def records(self, refs: Collection[str], persons: Sequence[PersonEntry] | None = None) -> PersonRecords:
        """The persons' entries, periods and consents (three queries, plain columns); `persons` are the entries
        of `refs` when the caller has just written them (an import), and are not read back."""
        refs = list(refs)
        if persons is None:
            persons = [PersonEntry(*row) for row in (await self.session.execute(
                select(col(PersonRow.person_ref), col(PersonRow.national_id_enc), col(PersonRow.name_enc),
                       col(PersonRow.district_code), col(PersonRow.subdistrict_code),
                       col(PersonRow.account_version))
                .where(in_array(col(PersonRow.person_ref), refs)))).all()]
        periods: dict[str, list[RegistryPeriod]] = {}
        for ref, category, valid_from, valid_to in (await self.session.execute(
                select(col(RegistryPeriodRow.person_ref), col(RegistryPeriodRow.category),
                       col(RegistryPeriodRow.valid_from), col(RegistryPeriodRow.valid_to))
                .where(in_array(col(RegistryPeriodRow.person_ref), refs))
                .order_by(col(RegistryPeriodRow.valid_from)))).all():
            periods.setdefault(ref, []).append(RegistryPeriod(category, valid_from, valid_to))
        consents: dict[str, list[Consent]] = {}
        for ref, signed_on, revoked_on in (await self.session.execute(
                select(col(ConsentRow.person_ref), col(ConsentRow.signed_on), col(ConsentRow.revoked_on))
                .where(in_array(col(ConsentRow.person_ref), refs))
                .order_by(col(ConsentRow.signed_on)))).all():
            consents.setdefault(ref, []).append(Consent(signed_on, revoked_on))
        return PersonRecords(list(persons), periods, consents)

    async def add_consent(self, consent: ConsentRow) -> None:
        self.session.add(consent)
        await self.session.flush()

    async def consent_person(self, consent_id: uuid.UUID) -> str | None:
        """Whose consent it is (without loading or locking it)."""
        return await self.session.scalar(select(col(ConsentRow.person_ref)).where(col(ConsentRow.id) == consent_id))

    async def consent(self, consent_id: uuid.UUID, *, for_update: bool = False) -> ConsentRow | None:
        return await self.session.get(ConsentRow, consent_id, with_for_update=for_update)

    async def open_consent(self, ref: str, signed_on: date) -> ConsentRow | None:
        """The person's consent signed that day and not revoked, if one was recorded."""
        return (await self.session.execute(select(ConsentRow).where(
            col(ConsentRow.person_ref) == ref, col(ConsentRow.signed_on) == signed_on,
            col(ConsentRow.revoked_on).is_(None)).limit(1))).scalar_one_or_none()

    async def revoke_consent(self, consent_id: uuid.UUID, revoked_on: date) -> None:
        await self.session.execute(update(ConsentRow).where(col(ConsentRow.id) == consent_id)
                                   .values(revoked_on=revoked_on))


class ContactRepository:
    """Phones (encrypted) and SMS opt-outs, versioned."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def locked(self, refs: Collection[str]) -> dict[str, ContactRow]:
        return {c.person_ref: c for c in (await self.session.execute(
            select(ContactRow).where(in_array(col(ContactRow.person_ref), refs)).with_for_update())).scalars()}

    async def save(self, rows: list[dict[str, Any]]) -> None:
        for chunk in _chunks(rows):
            stmt = insert(ContactRow).values(chunk)
            await self.session.execute(stmt.on_conflict_do_update(
                index_elements=[col(ContactRow.person_ref)],
                set_={c: stmt.excluded[c] for c in chunk[0] if c != "person_ref"}))


_DECISION = ("eligible", "reason", "category", "parked", "consent_lookback", "lookback_policy_id",
             "lookback_policy_version", "decided_at")


def _row(s: Screening, settlement: Any) -> dict[str, Any]:
    """The screening row, with the settlement in the form the caller binds (JSON text for the arrays)."""
    d, terms = s.decision, s.terms
    return {
        "settlement_id": s.settlement.settlement_id, "person_ref": s.person_ref,
        "discharge_date": s.settlement.discharge_date, "settlement": settlement,
        "eligible": d.eligible, "reason": d.reason.value, "category": d.category.value if d.category else None,
        "parked": d.parked, "consent_lookback": d.lookback.value if d.lookback else None,
        "lookback_policy_id": terms.policy_id if terms else None,
        "lookback_policy_version": terms.version if terms else None, "decided_at": datetime.now(UTC),
    }


_SCREENING = SQLModel.metadata.tables[ScreeningRow.__tablename__]
_SCREENING_COLUMNS = ("settlement_id", "person_ref", "discharge_date", "settlement", "eligible", "reason", "category",
                      "parked", "consent_lookback", "lookback_policy_id", "lookback_policy_version", "decided_at")
# Arrays, not rows: the ORM's bulk INSERT split a batch into one statement per run of rows with the same None
# columns (eligible and parked decisions alternate).
_ADD_SCREENINGS = insert_arrays(_SCREENING, _SCREENING_COLUMNS,
                                "ON CONFLICT (settlement_id) DO NOTHING RETURNING settlement_id")
_REDECIDE = insert_arrays(_SCREENING, _SCREENING_COLUMNS, "ON CONFLICT (settlement_id) DO UPDATE SET "
                          + ", ".join(f"{c} = EXCLUDED.{c}" for c in _DECISION))


def _screening_arrays(screenings: Sequence[Screening]) -> dict[str, list[Any]]:
    now = datetime.now(UTC)
    return as_arrays([{**_row(s, s.settlement.model_dump_json() if s.settlement_json is None
                              else orjson.dumps(s.settlement_json).decode()), "decided_at": now}
                      for s in screenings], _SCREENING_COLUMNS)


class ScreeningRepository:
    """The latest decision on each settlement."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, screenings: Sequence[Screening]) -> set[uuid.UUID]:
        """Store first decisions; a settlement decided before keeps its decision. Returns the settlements
        stored now (one statement)."""
        if not screenings:
            return set()
        return set((await self.session.execute(_ADD_SCREENINGS, _screening_arrays(screenings))).scalars())

    async def redecide(self, screenings: Sequence[Screening]) -> None:
        """Store new decisions on settlements screened again (one upsert)."""
        if screenings:
            await self.session.execute(_REDECIDE, _screening_arrays(screenings))

    async def reverse(self, settlement_id: uuid.UUID) -> None:
        await self.session.execute(update(ScreeningRow).where(col(ScreeningRow.settlement_id) == settlement_id)
                                   .values(reversed=True, parked=False))

    async def parked(self, refs: Collection[str]) -> list[ScreeningRow]:
        """The persons' parked settlements, locked, by discharge date."""
        return list((await self.session.execute(
            select(ScreeningRow).where(in_array(col(ScreeningRow.person_ref), refs), col(ScreeningRow.parked),
                                       ~col(ScreeningRow.reversed))
            .order_by(col(ScreeningRow.discharge_date)).with_for_update())).scalars())

    async def parked_in(self, region_code: str, effective_from: date, effective_to: date | None,
                        reasons: Collection[str]) -> list[ScreeningRow]:
        """Settlements of the region's persons discharged in the period and parked for one of `reasons`,
        locked, by discharge date."""
        period = [col(ScreeningRow.discharge_date) >= effective_from]
        if effective_to is not None:
            period.append(col(ScreeningRow.discharge_date) <= effective_to)
        return list((await self.session.execute(
            select(ScreeningRow).join(PersonRow, col(PersonRow.person_ref) == col(ScreeningRow.person_ref))
            .where(col(PersonRow.district_code) == region_code, col(ScreeningRow.parked),
                   ~col(ScreeningRow.reversed), col(ScreeningRow.reason).in_(list(reasons)), *period)
            .order_by(col(ScreeningRow.discharge_date)).with_for_update(of=ScreeningRow))).scalars())


class PolicyTermsRepository:
    """The terms of every published policy version (from policy.published), kept for good."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, published: Sequence[PolicyPublished]) -> None:
        """Keep each version's terms; a version heard again changes nothing."""
        if published:
            await self.session.execute(insert(PolicyTermsRow).on_conflict_do_nothing(), [{
                "policy_id": p.policy_id, "version": p.policy_version, "region_code": p.region_code,
                "effective_from": p.effective_from, "effective_to": p.effective_to,
                "consent_lookback": p.consent_lookback.value, "published_at": p.published_at} for p in published])

    async def of_districts(self, districts: Iterable[str]) -> list[PolicyTerms]:
        """Every published policy version of these districts (a handful each: read per batch, never cached, so
        replicas agree the moment a version is stored)."""
        districts = list(set(districts))
        if not districts:
            return []
        rows = (await self.session.execute(select(PolicyTermsRow).where(
            in_array(col(PolicyTermsRow.region_code), districts)))).scalars()
        return [PolicyTerms(r.policy_id, r.version, r.region_code, r.effective_from, r.effective_to,
                            ConsentLookback(r.consent_lookback)) for r in rows]
