from pydantic import Field, SecretStr

from shared.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    service_name: str = "notification"
    http_port: int = 8006
    sms_base_url: str = "http://127.0.0.1:8091"
    sms_timeout_s: float = 2.0
    sms_max_attempts: int = 4
    sms_backoff_initial_s: float = 0.2
    sms_backoff_max_s: float = 5.0
    sms_resend_backoff_s: float = Field(default=30.0, description="After the gateway stayed unreachable.")
    sms_concurrency: int = Field(default=4, description="Requests to the gateway under way at once.")
    sms_batch_max: int = Field(default=200, ge=1, le=1000, description="Messages per request to the gateway.")
    sms_pass_min_s: float = Field(
        default=0.2, ge=0, description="A sender pass starts at most this soon after the one before (unless that "
        "one took a full batch): every commit that makes messages pending wakes the sender, and the messages wait "
        "sms_hold_s anyway, so passes woken close together take one batch each instead of many small ones.")
    sms_callback_base_url: str = "http://127.0.0.1:8006"
    sms_callback_secret: SecretStr = SecretStr("dev-sms-callback-secret")
    sms_quiet_hours: str = Field(default="21:00-08:00", description="Local (CST) window with no SMS; 'off'.")
    sms_template_version: int | None = Field(default=None, description="Default: the newest document.")
    sms_sending_stale_s: float = Field(
        default=60.0, description="A message still `sending` after this long was left by a crash: send again, "
        "same key (the gateway returns the first).")
    sms_hold_s: float = Field(
        default=2.0, description="A new message waits this long for an earlier event still on another topic, so "
        "one person's messages go in the order things happened.")
    worker_batch: int = 200
    worker_idle_s: float = 0.5
    hospital_names: dict[str, str] = Field(
        default={"H001": "复旦大学附属中山医院", "H002": "上海市杨浦区中心医院", "H003": "上海市普陀区人民医院"},
        description="What a message calls a hospital (HOSPITAL_NAMES as JSON, as approval's case view); an "
        "unknown id shows as itself.")
