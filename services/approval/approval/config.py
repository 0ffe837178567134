from decimal import Decimal

from shared.settings import ServiceSettings


class ApprovalSettings(ServiceSettings):
    service_name: str = "approval"
    http_port: int = 8004
    skip_district_threshold: Decimal | None = None
    """Amounts at or below this skip district review after the clerk approves. Off (None) by default."""
    bench_auto_approve: bool = False
    """Benchmark only: the system approves every case on arrival. Refused outside development."""
    max_batch_approve: int = 200
    large_amount_threshold: Decimal = Decimal("5000.00")
    """Cases at or above this amount carry the `large_amount` flag in the reviewer's view."""
    frequent_settlements: int = 3
    """This many settlements of one person within `frequent_days` of a case flag it."""
    frequent_days: int = 30
    account_change_days: int = 30
    """A bank account changed this recently flags the person's cases."""
    hospital_names: dict[str, str] = {
        "H001": "复旦大学附属中山医院", "H002": "上海市杨浦区中心医院", "H003": "上海市普陀区人民医院"}
    """Designated hospitals' names for the case view (HOSPITAL_NAMES as JSON); an unknown id shows as itself."""
