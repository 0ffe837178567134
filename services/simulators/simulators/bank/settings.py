from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Faults(BaseModel):
    """What can go wrong, changeable at run time through PUT /admin/faults."""

    latency_ms: int = Field(0, ge=0)
    error_rate: float = Field(0.0, ge=0, le=1)  # 503 without booking
    timeout_rate: float = Field(0.0, ge=0, le=1)  # book, then answer too late: an ambiguous failure
    timeout_sleep_ms: int = Field(5000, ge=0)
    duplicate_callback_rate: float = Field(0.0, ge=0, le=1)
    closed_account_suffix: str = "0000"
    closed_accounts: list[str] = Field(default_factory=list)
    mismatch_names: list[str] = Field(default_factory=list)
    settle_delay_ms: int = Field(50, ge=0)


class BankSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BANK_SIM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8090
    seed: int = 42
    latency_ms: int = 0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_sleep_ms: int = 5000
    duplicate_callback_rate: float = 0.0
    settle_delay_ms: int = 50
    callback_secret: str = "dev-bank-callback-secret"

    def faults(self) -> Faults:
        return Faults(latency_ms=self.latency_ms, error_rate=self.error_rate, timeout_rate=self.timeout_rate,
                      timeout_sleep_ms=self.timeout_sleep_ms, duplicate_callback_rate=self.duplicate_callback_rate,
                      settle_delay_ms=self.settle_delay_ms)
