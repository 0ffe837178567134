from typing import Literal

from shared.settings import ServiceSettings


class EligibilitySettings(ServiceSettings):
    service_name: str = "eligibility"
    http_port: int = 8002
    consent_lookback: Literal["calendar_year", "none"] = "calendar_year"
    max_import_records: int = 5000
    max_body_bytes: int = 5 * 1024 * 1024
