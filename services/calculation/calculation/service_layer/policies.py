"""Publishing versioned policy documents, and announcing each version to the services that apply its terms."""

from datetime import UTC, datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from calculation.adapters.tables import PolicyRecord
from calculation.domain.policy import Policy
from shared.contracts.envelope import Envelope
from shared.contracts.events import PolicyPublished
from shared.contracts.topics import POLICY_PUBLISHED, region_key
from shared.messaging.outbox import Outgoing, add_events
from shared.problems import ProblemError
from shared.settings import ServiceSettings

# Calculating takes this lock shared, publishing takes it alone: a settlement is either calculated with the new
# policy in sight, or recorded as no_policy before the publication, which then finds and calculates it.
_POLICY_LOCK_KEY = 0x706F6C69


async def load_policies(session: AsyncSession) -> list[Policy]:
    """Every published policy (the caller's transaction holds the policy lock, shared, until it ends)."""
    await session.execute(text(f"SELECT pg_advisory_xact_lock_shared({_POLICY_LOCK_KEY})"))
    rows = (await session.execute(select(PolicyRecord.document))).scalars()
    return [Policy.model_validate(doc) for doc in rows]


async def publish_policy(session: AsyncSession, policy: Policy, published_by: str) -> None:
    """Store a new version; versions of a policy only go up, and a published version never changes."""
    await session.execute(text(f"SELECT pg_advisory_xact_lock({_POLICY_LOCK_KEY})"))
    latest = await session.scalar(select(func.max(PolicyRecord.version)).where(
        PolicyRecord.policy_id == policy.policy_id))
    if latest is not None and policy.version <= latest:
        raise ProblemError(409, "policy_version_exists",
                           f"version must be greater than {latest}; published versions are immutable", field="version")
    session.add(PolicyRecord(policy_id=policy.policy_id, version=policy.version, region_code=policy.region_code,
                             effective_from=policy.effective_from, effective_to=policy.effective_to,
                             document=policy.model_dump(mode="json"), published_by=published_by))
    await session.flush()  # visible to the rest of this transaction (settlements waiting for it)


async def seed_policies(session: AsyncSession, policies: list[Policy]) -> int:
    """Load the repository's demo policies when absent (idempotent)."""
    if not policies:
        return 0
    stmt = insert(PolicyRecord).values([{
        "policy_id": p.policy_id, "version": p.version, "region_code": p.region_code,
        "effective_from": p.effective_from, "effective_to": p.effective_to,
        "document": p.model_dump(mode="json"), "published_by": "seed"} for p in policies])
    result = await session.execute(stmt.on_conflict_do_nothing().returning(PolicyRecord.policy_id))
    return len(result.all())


async def announce_policies(session: AsyncSession, settings: ServiceSettings) -> int:
    """A PolicyPublished for every version not yet announced (just published or seeded, or published before
    versions were announced), in the same transaction as the mark. Returns how many."""
    await session.execute(text(f"SELECT pg_advisory_xact_lock({_POLICY_LOCK_KEY})"))
    rows = (await session.execute(select(PolicyRecord).where(PolicyRecord.announced_at.is_(None))  # type: ignore[union-attr]
                                  .order_by(PolicyRecord.published_at, PolicyRecord.version))).scalars().all()
    if not rows:
        return 0
    outgoing = []
    for row in rows:
        policy = Policy.model_validate(row.document)
        data = PolicyPublished(policy_id=policy.policy_id, policy_version=policy.version,
                               region_code=policy.region_code, effective_from=policy.effective_from,
                               effective_to=policy.effective_to, consent_lookback=policy.consent_lookback,
                               published_at=row.published_at)
        outgoing.append(Outgoing(POLICY_PUBLISHED, Envelope.wrap(data, person_ref=region_key(policy.region_code),
                                                                 producer="calculation")))
    await add_events(session, settings, outgoing)
    await session.execute(update(PolicyRecord).where(PolicyRecord.announced_at.is_(None))  # type: ignore[union-attr]
                          .values(announced_at=datetime.now(UTC)))
    return len(rows)
