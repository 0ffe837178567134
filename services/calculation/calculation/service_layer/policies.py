"""Publishing versioned policy documents, and announcing each version to the services that apply its terms."""

from datetime import datetime

from calculation.domain.policy import Policy
from calculation.service_layer.assess import assess_waiting
from calculation.service_layer.unit_of_work import PRODUCER, CalculationUnitOfWork
from shared.contracts.envelope import Envelope
from shared.contracts.events import PolicyPublished
from shared.contracts.topics import POLICY_PUBLISHED, region_key
from shared.errors import Conflict
from shared.messaging.outbox import Outgoing


async def publish_policy(uow: CalculationUnitOfWork, policy: Policy, published_by: str) -> int:
    """Store a new version and announce it; settlements of its region waiting for a policy that it covers are
    calculated now. Versions of a policy only go up, and a published version never changes. Returns how many
    waiting settlements were calculated."""
    await uow.policies.lock()
    latest = await uow.policies.latest_version(policy.policy_id)
    if latest is not None and policy.version <= latest:
        raise Conflict("policy_version_exists",
                       f"version must be greater than {latest}; published versions are immutable", field="version")
    await uow.policies.add(policy, published_by)
    await announce_policies(uow)
    return await assess_waiting(uow, policy)


async def seed_policies(uow: CalculationUnitOfWork, policies: list[Policy]) -> int:
    """Load the repository's demo policies when absent (idempotent) and announce them."""
    await uow.policies.lock()
    seeded = await uow.policies.seed(policies)
    await announce_policies(uow)
    return seeded


async def announce_policies(uow: CalculationUnitOfWork) -> int:
    """A PolicyPublished for every version not yet announced (just published or seeded, or published before
    versions were announced), in the same transaction as the mark. Returns how many."""
    await uow.policies.lock()
    unannounced = await uow.policies.unannounced()
    if not unannounced:
        return 0
    uow.emit(*(_announcement(policy, published_at) for policy, published_at in unannounced))
    await uow.policies.mark_announced()
    return len(unannounced)


def _announcement(policy: Policy, published_at: datetime) -> Outgoing:
    data = PolicyPublished(policy_id=policy.policy_id, policy_version=policy.version, region_code=policy.region_code,
                           effective_from=policy.effective_from, effective_to=policy.effective_to,
                           consent_lookback=policy.consent_lookback, published_at=published_at)
    return Outgoing(POLICY_PUBLISHED, Envelope.wrap(data, person_ref=region_key(policy.region_code), producer=PRODUCER))
