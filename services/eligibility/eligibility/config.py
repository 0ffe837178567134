from shared.settings import ServiceSettings


class EligibilitySettings(ServiceSettings):
    service_name: str = "eligibility"
    http_port: int = 8002
    max_import_records: int = 5000
    max_body_bytes: int = 5 * 1024 * 1024
