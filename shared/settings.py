"""Settings every service shares. The only place that reads the environment."""

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    """Where a service runs. Only development and test may run on the development secrets and keys."""

    development = "development"
    test = "test"
    staging = "staging"
    production = "production"


DEVELOPMENT_ENVIRONMENTS = frozenset({Environment.development, Environment.test})


class ServiceSettings(BaseSettings):
    """Settings common to every service; each service subclasses it and sets `service_name`.

    Outside development and test a service refuses to start while any secret or key still has its
    development default (every SecretStr setting, and those a subclass names in `development_secrets`), and the
    error names each such setting by its environment variable.
    """

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)
    development_secrets: ClassVar[tuple[str, ...]] = ()

    service_name: str = "service"
    environment: Environment = Environment.development
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    max_body_bytes: int = Field(default=1024 * 1024, description="Larger request bodies are refused (413) "
                                "while they stream in, before anything buffers or checks them.")

    # Kafka
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    topic_prefix: str = Field(default="", description="Prepended to every topic name; isolates test runs.")
    kafka_group_instance_id: str | None = Field(
        default=None, description="Static group membership id; default '<service>-<host>-<http port>' (ADR 0018).")
    kafka_session_timeout_ms: int = 10000
    consumer_batch_max: int = 500
    consumer_poll_timeout_ms: int = 200
    consumer_gather_ms: int = Field(
        default=5, description="After a poll returns what was fetched in advance, how long it waits for what reached "
        "the broker meanwhile to join the same batch (0: not at all).")
    consumer_fetch_max_wait_ms: int = Field(
        default=50, description="How long the broker holds a fetch that finds nothing new; data arriving meanwhile "
        "answers it at once. Lower: fewer waits behind a fetch in flight, more fetches while idle.")
    producer_linger_ms: int = Field(
        default=0, description="How long the producer waits for more messages before sending a batch. The relay "
        "hands a whole outbox batch over at once, so waiting adds nothing to the batch: 5 ms cost each hop 6-7 ms.")
    handler_max_attempts: int = 4
    handler_backoff_initial_s: float = 0.05
    handler_backoff_max_s: float = 2.0
    outbox_batch_max: int = 1000
    outbox_idle_poll_s: float = Field(default=0.5, description="Fallback poll; local commits wake the relay.")
    outbox_publish_timeout_s: float = Field(
        default=30.0, description="A batch the broker has not confirmed by then is sent again by a new producer.")

    # PostgreSQL. The owner role creates the database and runs migrations; the service's queries run as a
    # runtime role with data privileges only (no DDL, and no UPDATE/DELETE on append-only tables).
    pg_host: str = "127.0.0.1"
    pg_port: int = 55432
    pg_user: str = "medassist"
    pg_password: SecretStr = SecretStr("medassist-dev")
    pg_app_user: str | None = Field(default=None, description="Runtime role; default '<database>_app'.")
    pg_app_password: SecretStr = SecretStr("medassist-app-dev")
    database_name: str | None = None
    db_pool_size: int = 10

    # Secrets (development defaults; production sets them from a secret store)
    person_ref_pepper: SecretStr = SecretStr("dev-pepper-change-me")
    field_keys: SecretStr = SecretStr("k1=ZGV2LWZpZWxkLWtleS0zMi1ieXRlcy1sb25nLSEhISE=")
    field_active_key_id: str = "k1"
    payee_keys: SecretStr = SecretStr("p1=ZGV2LXBheWVlLXRyYW5zcG9ydC1rZXktMzItYnl0ZSE=")
    payee_active_key_id: str = "p1"
    case_view_keys: SecretStr = SecretStr("v1=ZGV2LWNhc2Utdmlldy10cmFuc3BvcnQta2V5LTMyYiE=")
    """Transport key for names and national IDs from eligibility to approval's case view (ADR 0014)."""
    case_view_active_key_id: str = "v1"
    contact_keys: SecretStr = SecretStr("c1=ZGV2LWNvbnRhY3QtdHJhbnNwb3J0LWtleS0zMmJ5dGU=")
    contact_active_key_id: str = "c1"
    jwt_secret: SecretStr = SecretStr("dev-jwt-secret-change-me-at-least-32-bytes")
    jwt_jwks_url: str | None = None
    jwt_issuer: str = "medassist-dev"
    jwt_audience: str = "medassist"

    # Telemetry
    log_level: str = "INFO"
    otel_exporter_otlp_endpoint: str | None = None

    @model_validator(mode="after")
    def _no_development_secrets_outside_development(self) -> "ServiceSettings":
        if self.environment in DEVELOPMENT_ENVIRONMENTS:
            return self
        fields = type(self).model_fields
        refused = []
        for name, info in fields.items():
            if not (isinstance(info.default, SecretStr) or name in self.development_secrets):
                continue
            if name == "jwt_secret" and self.jwt_jwks_url:
                continue  # tokens are verified with the identity provider's keys; the shared secret is unused
            value, default = getattr(self, name), info.default
            if _plain(value) == _plain(default):
                refused.append(name.upper())
        if refused:
            raise ValueError(f"ENVIRONMENT={self.environment.value} refuses the development default of "
                             f"{', '.join(refused)}: set each from the secret store")
        return self

    @property
    def database(self) -> str:
        return self.database_name or self.service_name

    @property
    def app_role(self) -> str:
        return self.pg_app_user or f"{self.database}_app"

    @property
    def database_url(self) -> str:
        """The URL the service's queries use: the runtime role."""
        return self._url(self.app_role, self.pg_app_password)

    @property
    def owner_database_url(self) -> str:
        """The URL migrations use: the owner of the database."""
        return self._url(self.pg_user, self.pg_password)

    def _url(self, user: str, password: SecretStr) -> str:
        secret = password.get_secret_value()
        return f"postgresql+asyncpg://{user}:{secret}@{self.pg_host}:{self.pg_port}/{self.database}"

    def topic(self, base: str) -> str:
        """The physical topic name of a logical topic (see shared.contracts.topics)."""
        return f"{self.topic_prefix}{base}"


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value
