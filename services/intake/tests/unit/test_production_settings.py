"""Outside development a service refuses to start on any development secret or key, and says which."""

import pytest
from intake.config import IntakeSettings
from pydantic import ValidationError

from shared.settings import ServiceSettings
from shared.testing import production_secrets


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_test_run_on_the_development_defaults(environment: str) -> None:
    assert ServiceSettings(environment=environment).environment == environment


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_elsewhere_every_development_secret_is_refused_by_name(environment: str) -> None:
    with pytest.raises(ValidationError) as raised:
        IntakeSettings(environment=environment)
    message = str(raised.value)
    for name in ("PG_PASSWORD", "PG_APP_PASSWORD", "PERSON_REF_PEPPER", "FIELD_KEYS", "PAYEE_KEYS", "JWT_SECRET",
                 "HOSPITAL_SECRETS"):
        assert name in message
    assert "dev-pepper-change-me" not in message, "the error names settings, never their values"


@pytest.mark.parametrize("left_at_default", ["pg_password", "person_ref_pepper", "field_keys", "hospital_secrets"])
def test_one_forgotten_secret_is_enough_to_refuse(left_at_default: str) -> None:
    values = {k: v for k, v in production_secrets(IntakeSettings).items() if k != left_at_default}
    with pytest.raises(ValidationError, match=left_at_default.upper()):
        IntakeSettings(environment="production", **values)


def test_production_starts_with_its_own_secrets_and_with_jwks_needs_no_shared_secret() -> None:
    values = production_secrets(IntakeSettings)
    assert IntakeSettings(environment="production", **values).environment == "production"
    values.pop("jwt_secret")
    assert IntakeSettings(environment="production", jwt_jwks_url="https://idp.example/jwks", **values)
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        IntakeSettings(environment="production", **values)


@pytest.mark.parametrize("environment", ["prod", "Production", "", "dev"])
def test_the_environment_is_one_of_four(environment: str) -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(environment=environment)


def test_the_service_process_refuses_to_start_and_says_which_setting() -> None:
    import os
    import subprocess
    import sys

    from shared.testing import ROOT, SERVICE_PATHS

    env = {**os.environ, "ENVIRONMENT": "production", "PERSON_REF_PEPPER": "a-real-pepper-from-the-store",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *SERVICE_PATHS])}
    done = subprocess.run([sys.executable, "-m", "intake"], env=env, cwd=ROOT, capture_output=True, timeout=120,
                          check=False)
    assert done.returncode != 0
    error = done.stderr.decode()
    assert "FIELD_KEYS" in error and "HOSPITAL_SECRETS" in error and "PERSON_REF_PEPPER" not in error
