from dataclasses import dataclass

from shared.security.crypto import FieldCipher
from shared.settings import ServiceSettings


class EligibilitySettings(ServiceSettings):
    service_name: str = "eligibility"
    http_port: int = 8002
    max_import_records: int = 5000
    max_body_bytes: int = 5 * 1024 * 1024


@dataclass(frozen=True)
class Keys:
    """The keys eligibility works with: pepper for pseudonyms, at-rest cipher, payee, case-view and contact
    transport."""

    pepper: bytes
    at_rest: FieldCipher
    payee: FieldCipher
    case_view: FieldCipher
    contact: FieldCipher

    @classmethod
    def of(cls, settings: ServiceSettings) -> "Keys":
        return cls(
            pepper=settings.person_ref_pepper.get_secret_value().encode(),
            at_rest=FieldCipher.from_config(settings.field_keys.get_secret_value(),
                                            active=settings.field_active_key_id),
            payee=FieldCipher.from_config(settings.payee_keys.get_secret_value(), active=settings.payee_active_key_id),
            case_view=FieldCipher.from_config(settings.case_view_keys.get_secret_value(),
                                              active=settings.case_view_active_key_id),
            contact=FieldCipher.from_config(settings.contact_keys.get_secret_value(),
                                            active=settings.contact_active_key_id),
        )
