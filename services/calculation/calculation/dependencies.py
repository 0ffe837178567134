"""Calculation's typed dependencies (Runtime.deps), built at start-up by the bootstrap."""

from dataclasses import dataclass

from calculation.config import CalculationSettings


@dataclass(frozen=True)
class CalculationDeps:
    """What calculation's code reaches at run time besides the database and broker (Runtime.deps)."""

    settings: CalculationSettings
