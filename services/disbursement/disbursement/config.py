from typing import Literal

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings


class DisbursementSettings(ServiceSettings):
    service_name: str = "disbursement"
    http_port: int = 8005
    bank_adapter: Literal["rest", "iso20022"] = "rest"
    bank_base_url: str = "http://127.0.0.1:8090"
    bank_timeout_s: float = 2.0
    bank_max_attempts: int = 4
    bank_backoff_initial_s: float = 0.2
    bank_backoff_max_s: float = 5.0
    bank_concurrency: int = 32
    callback_base_url: str = "http://127.0.0.1:8005"
    bank_callback_secret: SecretStr = SecretStr("dev-bank-callback-secret")
    worker_batch: int = Field(200, ge=1, le=1000)
    """Payments per sender pass, handed to the bank in one call (a bank batch holds up to 1,000 transfers)."""
    sender_passes: int = Field(4, ge=1, le=32)
    """Bank calls of the sender under way at once: a pass hands its batch over and claims again while the bank
    answers, so a payment falling due meanwhile does not wait for those answers. One waits for the others."""
    worker_idle_s: float = 0.5
    """How often the sender looks for payments falling due by the clock (retries); new ones wake it at once."""
    poll_after_s: float = 5.0
    sending_stale_s: float = 60.0
    """A payment still `sending` after this long was left by a crash: ask the bank, then re-send if unknown.
    Longer than a bank call with all its retries, so a live call is never mistaken for a crashed one."""
    resend_backoff_s: float = 5.0
    statement_check_s: float = 60.0
    """How often the daily statement reconciliation looks whether yesterday's statement is matched yet."""
    debtor_account: str = "310110000000000001"
    debtor_name: str = "Yangpu District Medical Assistance Centre"
