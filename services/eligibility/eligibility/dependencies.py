"""Eligibility's typed dependencies (Runtime.deps), built at start-up by the bootstrap."""

from dataclasses import dataclass

from eligibility.config import EligibilitySettings, Keys


@dataclass(frozen=True)
class EligibilityDeps:
    """What eligibility's code reaches at run time besides the database and broker (Runtime.deps)."""

    settings: EligibilitySettings
    keys: Keys
