"""A registry record as civil affairs sends it (JSON or CSV), validated strictly."""

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.contracts.types import DISTRICT_CODE_PATTERN, SUBDISTRICT_CODE_PATTERN, Category, IsoDate, NationalId

CSV_COLUMNS = ("national_id", "name", "category", "district_code", "subdistrict_code", "valid_from", "valid_to",
               "bank_account", "bank_name", "phone")
PHONE_PATTERN = r"^1[3-9]\d{9}$"  # a mainland mobile number, the only kind an SMS reaches


class RegistryRecordIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    national_id: NationalId
    name: str = Field(min_length=1, max_length=64)
    category: Category
    district_code: str = Field(pattern=DISTRICT_CODE_PATTERN)
    subdistrict_code: str = Field(pattern=SUBDISTRICT_CODE_PATTERN)
    valid_from: IsoDate
    valid_to: IsoDate | None = None
    bank_account: str | None = Field(default=None, pattern=r"^[0-9]{12,30}$")
    bank_name: str | None = Field(default=None, max_length=64)
    phone: str | None = Field(default=None, pattern=PHONE_PATTERN, description="Mobile number for SMS notices.")

    @field_validator("valid_to", "bank_account", "bank_name", "phone", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @model_validator(mode="after")
    def _consistent(self) -> "RegistryRecordIn":
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise ValueError("valid_to is before valid_from")
        if not self.subdistrict_code.startswith(self.district_code):
            raise ValueError("subdistrict_code does not belong to district_code")
        return self


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    national_id: str = Field(min_length=1, max_length=64, description="Resident identity card number "
                             "(canonical form as for NationalId; checked by the endpoint, so the problem says so).")
    signed_on: IsoDate
    channel: str = Field(default="counter", pattern=r"^(counter|app|paper)$")
    sms_opt_out: bool = Field(default=False, description="The person asked for no SMS about their case.")

    @field_validator("signed_on")
    @classmethod
    def _not_future(cls, value: date) -> date:
        if value > date.today():
            raise ValueError("signed_on is in the future")
        return value


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    revoked_on: IsoDate
