from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Faults(BaseModel):
    """What can go wrong, changeable at run time through PUT /admin/faults. Each misbehaviour of a real (or
    compromised) bank is one setting; rates are chances per transfer, drawn from the seeded random."""

    latency_ms: int = Field(0, ge=0)
    # Transfer calls are taken and not answered (nor booked) until this is cleared: calls under way at once.
    hold_calls: bool = False
    # Not booked: a 503 (a REST batch answers that transfer `unavailable`; an ISO document fails whole).
    error_rate: float = Field(0.0, ge=0, le=1)
    # Book, then answer too late: an ambiguous failure (for the whole call carrying the transfer).
    timeout_rate: float = Field(0.0, ge=0, le=1)
    timeout_sleep_ms: int = Field(5000, ge=0)
    duplicate_callback_rate: float = Field(0.0, ge=0, le=1)
    closed_account_suffix: str = "0000"
    closed_accounts: list[str] = Field(default_factory=list)
    mismatch_names: list[str] = Field(default_factory=list)
    settle_delay_ms: int = Field(50, ge=0)
    # A signed callback saying "failed, account_closed" while the bank's own status is accepted, then settled.
    false_failure_rate: float = Field(0.0, ge=0, le=1)
    # The bank's status says failed (and a callback says so), then after late_settle_ms the transfer settles.
    failure_then_settle_rate: float = Field(0.0, ge=0, le=1)
    late_settle_ms: int = Field(1000, ge=0)
    # The bank takes the transfer but books it only after late_booking_ms: until then its status says it never
    # received the key, and every call with the key hangs that long (longer than the payer's retry budget).
    late_booking_rate: float = Field(0.0, ge=0, le=1)
    late_booking_ms: int = Field(3000, ge=0)
    # Money booked twice for one settled transfer: two statement entries, one key.
    duplicate_booking_rate: float = Field(0.0, ge=0, le=1)


class BankSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BANK_SIM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8090
    seed: int = 42
    db_path: str = ""
    """SQLite file of the books (transfers and statement entries); empty keeps them in memory (tests)."""
    latency_ms: int = 0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_sleep_ms: int = 5000
    duplicate_callback_rate: float = 0.0
    settle_delay_ms: int = 50
    callback_secret: str = "dev-bank-callback-secret"
    debtor_account: str = "310110000000000001"

    def faults(self) -> Faults:
        return Faults(latency_ms=self.latency_ms, error_rate=self.error_rate, timeout_rate=self.timeout_rate,
                      timeout_sleep_ms=self.timeout_sleep_ms, duplicate_callback_rate=self.duplicate_callback_rate,
                      settle_delay_ms=self.settle_delay_ms)
