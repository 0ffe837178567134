"""Logical topic names and which events travel on each. Physical names add `settings.topic_prefix`."""

import hashlib

from shared.contracts import events as ev

SETTLEMENT_RECEIVED = "settlement.received"
ELIGIBILITY_DECIDED = "eligibility.decided"
ASSISTANCE_CALCULATED = "assistance.calculated"
CASE_DECIDED = "case.decided"
TRANSFER_SETTLED = "transfer.settled"
REGISTRY_PAYEE = "registry.payee"
REGISTRY_PERSON = "registry.person"
POLICY_PUBLISHED = "policy.published"
REGISTRY_CONTACT = "registry.contact"

TOPIC_EVENTS: dict[str, tuple[type[ev.EventData], ...]] = {
    SETTLEMENT_RECEIVED: (ev.SettlementReceived, ev.SettlementReversed),
    ELIGIBILITY_DECIDED: (ev.EligibilityDecided, ev.SettlementReversed),
    ASSISTANCE_CALCULATED: (ev.AssistanceCalculated, ev.AssistanceReversed, ev.RecoveryOpened),
    CASE_DECIDED: (ev.CaseDecided,),
    TRANSFER_SETTLED: (ev.TransferSettled,),
    REGISTRY_PAYEE: (ev.PayeeAccountsUpdated, ev.PayeeAccountUpdated),
    REGISTRY_PERSON: (ev.PersonsRecorded, ev.PersonRecorded),
    POLICY_PUBLISHED: (ev.PolicyPublished,),
    REGISTRY_CONTACT: (ev.ContactsUpdated, ev.ContactUpdated),
}

EVENT_TYPES: dict[str, type[ev.EventData]] = {
    model.__name__: model for models in TOPIC_EVENTS.values() for model in models
}


def region_key(region_code: str) -> str:
    """The key of events about a region rather than a person (policy.published), in the envelope's `person_ref`
    field: shaped like a pseudonym, never equal to one (a national ID is never `region:<code>`)."""
    return hashlib.sha256(f"region:{region_code}".encode()).hexdigest()


REGISTRY_KEY = hashlib.sha256(b"registry").hexdigest()
"""The key of the registry's events about many persons (ev.RegistryChunk), in the envelope's `person_ref` field:
every event of a registry topic goes to one partition, so one person's entries stay in the order they were
written (docs/decisions/0033). Shaped like a pseudonym, never equal to one."""


def dlq(topic: str) -> str:
    """The dead-letter topic of a topic."""
    return f"{topic}.dlq"


def all_topics() -> list[str]:
    """Every logical topic with its dead-letter topic."""
    return [name for topic in TOPIC_EVENTS for name in (topic, dlq(topic))]
