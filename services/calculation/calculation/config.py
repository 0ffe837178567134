from dataclasses import dataclass

from shared.settings import ServiceSettings


class CalculationSettings(ServiceSettings):
    service_name: str = "calculation"
    http_port: int = 8003
    seed_demo_policies: bool = True


@dataclass(frozen=True)
class CalculationDeps:
    """What calculation's code reaches at run time besides the database and broker (Runtime.deps)."""

    settings: CalculationSettings
