from pydantic import Field

from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings):
    development_secrets = ("hospital_secrets",)
    service_name: str = "intake"
    http_port: int = 8001
    hospital_secrets: dict[str, list[str]] = Field(
        default={"H001": ["dev-secret-H001"], "H002": ["dev-secret-H002"], "H003": ["dev-secret-H003"]},
        description="Active signing secrets per hospital id; two may be active during a rotation.",
    )
    signature_window_s: int = 300
    max_batch_items: int = 500
    max_body_bytes: int = 2 * 1024 * 1024
