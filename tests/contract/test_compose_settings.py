"""docker-compose.yml stays valid and uses only setting names the services read."""

from pathlib import Path

import yaml
from approval.config import ApprovalSettings
from calculation.config import CalculationSettings
from console.config import ConsoleSettings
from disbursement.config import DisbursementSettings
from eligibility.config import EligibilitySettings
from intake.config import IntakeSettings
from notification.config import NotificationSettings
from simulators.bank.settings import BankSettings
from simulators.sms.settings import SmsSettings

from shared.telemetry import TRACING_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"intake": IntakeSettings, "eligibility": EligibilitySettings, "calculation": CalculationSettings,
            "approval": ApprovalSettings, "disbursement": DisbursementSettings, "console": ConsoleSettings,
            "notification": NotificationSettings}
OTEL = set(TRACING_SETTINGS)


def compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_service_is_defined_with_its_module() -> None:
    services = compose()["services"]
    for name in (*SETTINGS, "kafka", "postgres", "zipkin", "bootstrap", "bank", "sms"):
        assert name in services
    for name in SETTINGS:
        assert services[name]["command"] == ["python", "-m", name]


def test_environment_names_are_settings_the_services_read() -> None:
    services = compose()["services"]
    for name, settings in SETTINGS.items():
        known = {field.upper() for field in settings.model_fields} | OTEL | {"LOG_LEVEL"}
        unknown = set(services[name]["environment"]) - known
        assert not unknown, f"{name}: {unknown}"
    bank_known = {f"BANK_SIM_{field.upper()}" for field in BankSettings.model_fields}
    assert set(services["bank"]["environment"]) <= bank_known
    sms_known = {f"SMS_SIM_{field.upper()}" for field in SmsSettings.model_fields}
    assert set(services["sms"]["environment"]) <= sms_known
