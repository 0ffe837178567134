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
