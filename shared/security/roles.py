"""Who acts in the system: the roles staff tokens carry, the resident, and the system itself.

One type for the token code (shared.security.staff_auth) and the domains (approval's case records who took
each action as which role). Framework-free on purpose, so a domain model may import it (import-linter holds
it to that).
"""

from enum import StrEnum


class Role(StrEnum):
    clerk = "clerk"
    district_reviewer = "district_reviewer"
    registry_officer = "registry_officer"
    policy_admin = "policy_admin"
    ops = "ops"
    resident = "resident"  # not staff: a person reading their own settlements (sub = person_ref)
    system = "system"  # the system's own actions (auto-approval, a reversal's cancellation); never in a token


TOKEN_ROLES = frozenset(Role) - {Role.system}
"""The roles a token may carry: whoever can present a token is a person, never the system."""
