from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SmsFaults(BaseModel):
    """What can go wrong, changeable at run time through PUT /admin/faults."""

    latency_ms: int = Field(0, ge=0)
    error_rate: float = Field(0.0, ge=0, le=1)  # 503 without taking the message
    timeout_rate: float = Field(0.0, ge=0, le=1)  # take it, then answer too late
    timeout_sleep_ms: int = Field(5000, ge=0)
    deliver_delay_ms: int = Field(50, ge=0)
    undeliverable_suffix: str = "0000"  # numbers ending so are switched off: "undeliverable"


class SmsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMS_SIM_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8091
    seed: int = 7
    latency_ms: int = 0
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_sleep_ms: int = 5000
    deliver_delay_ms: int = 50
    callback_secret: str = "dev-sms-callback-secret"
    report_batch_max: int = Field(200, ge=1, le=1000)  # delivery reports per callback at most
    report_linger_ms: int = Field(50, ge=0)  # a report waits this long for others to go with it

    def faults(self) -> SmsFaults:
        return SmsFaults(latency_ms=self.latency_ms, error_rate=self.error_rate, timeout_rate=self.timeout_rate,
                         timeout_sleep_ms=self.timeout_sleep_ms, deliver_delay_ms=self.deliver_delay_ms)
