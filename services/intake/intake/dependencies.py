"""What intake's code needs besides the database and the broker, built once at start-up (`Runtime.deps`)."""

from dataclasses import dataclass

from intake.config import IntakeSettings
from intake.domain.settlement import Sealed
from shared.security.crypto import FieldCipher, person_ref


@dataclass(frozen=True)
class IntakeDeps:
    settings: IntakeSettings
    cipher: FieldCipher
    pepper: bytes

    @classmethod
    def build(cls, settings: IntakeSettings) -> "IntakeDeps":
        return cls(settings, FieldCipher.from_config(settings.field_keys.get_secret_value(),
                                                     active=settings.field_active_key_id),
                   settings.person_ref_pepper.get_secret_value().encode())

    def person_ref(self, national_id: str) -> str:
        """The pseudonym every service knows the person by (HMAC of the national ID)."""
        return person_ref(self.pepper, national_id)

    def seal(self, national_id: str, name: str, aad: str) -> Sealed:
        """The patient's personal data encrypted, bound to the settlement (`aad`)."""
        return Sealed(self.cipher.encrypt(national_id, aad), self.cipher.encrypt(name, aad))
