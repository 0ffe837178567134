"""What approval's handlers and routes are built with (`Runtime.deps`), made once at start-up from its settings."""

from dataclasses import dataclass

from approval.config import ApprovalSettings
from approval.domain.case import ApprovalRules
from approval.domain.review import FlagRules
from shared.security.crypto import FieldCipher


@dataclass(frozen=True)
class ReviewContext:
    """What the case view is built with: the case-view transport key, the flag rules, the hospitals' names."""

    case_view: FieldCipher
    rules: FlagRules
    hospital_names: dict[str, str]


@dataclass(frozen=True)
class ApprovalDeps:
    settings: ApprovalSettings
    rules: ApprovalRules
    review: ReviewContext


def dependencies(settings: ApprovalSettings) -> ApprovalDeps:
    """The approval rules, the case view's transport key and flag rules, from the settings."""
    return ApprovalDeps(
        settings=settings,
        rules=ApprovalRules(skip_district_threshold=settings.skip_district_threshold,
                            auto_approve=settings.bench_auto_approve),
        review=ReviewContext(
            case_view=FieldCipher.from_config(settings.case_view_keys.get_secret_value(),
                                              active=settings.case_view_active_key_id),
            rules=FlagRules(large_amount=settings.large_amount_threshold,
                            frequent_count=settings.frequent_settlements, frequent_days=settings.frequent_days,
                            account_change_days=settings.account_change_days),
            hospital_names=settings.hospital_names))
