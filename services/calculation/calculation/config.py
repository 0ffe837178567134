
from shared.settings import ServiceSettings


class CalculationSettings(ServiceSettings):
    service_name: str = "calculation"
    http_port: int = 8003
    seed_demo_policies: bool = True
