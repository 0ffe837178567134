"""What notification's code needs besides the database and the broker, built once at start-up (`Runtime.deps`)."""

from dataclasses import dataclass
from pathlib import Path

from notification.adapters.sms_gateway import SmsGateway
from notification.config import NotificationSettings
from notification.domain.schedule import QuietHours
from notification.domain.templates import TemplateSet, load_templates
from shared.security.crypto import FieldCipher

TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class Wording:
    """What messages are written with: the template version in use, quiet hours, hospital names, and how long a
    new message waits for an earlier event that may still be on another topic."""

    templates: TemplateSet
    quiet: QuietHours
    hospital_names: dict[str, str]
    hold_s: float = 2.0

    @classmethod
    def from_settings(cls, settings: NotificationSettings, folder: Path = TEMPLATES) -> "Wording":
        """The configured template version (default: the newest document); refuses an unknown version."""
        templates = load_templates(folder)
        version = settings.sms_template_version or max(templates)
        if version not in templates:
            raise ValueError(f"SMS_TEMPLATE_VERSION {version}: no such template document")
        return cls(templates[version], QuietHours.parse(settings.sms_quiet_hours), settings.hospital_names,
                   settings.sms_hold_s)


@dataclass(frozen=True)
class NotificationDeps:
    settings: NotificationSettings
    wording: Wording
    contact_cipher: FieldCipher
    sms: SmsGateway

    @classmethod
    def build(cls, settings: NotificationSettings, wording: Wording) -> "NotificationDeps":
        return cls(settings, wording,
                   FieldCipher.from_config(settings.contact_keys.get_secret_value(),
                                           active=settings.contact_active_key_id),
                   SmsGateway(base_url=settings.sms_base_url, timeout_s=settings.sms_timeout_s,
                              max_attempts=settings.sms_max_attempts,
                              backoff_initial_s=settings.sms_backoff_initial_s,
                              backoff_max_s=settings.sms_backoff_max_s))

    @property
    def pepper(self) -> bytes:
        return self.settings.person_ref_pepper.get_secret_value().encode()
