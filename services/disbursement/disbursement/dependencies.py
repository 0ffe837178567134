"""What disbursement's handlers, passes and routes are given: its settings, the bank, the payee cipher, and the
in-process signals between the callback route and the workers."""

from dataclasses import dataclass, field

from disbursement.adapters.bank import BankGateway, BankResult
from disbursement.config import DisbursementSettings
from shared.security.crypto import FieldCipher
from shared.worker import Wakeup


class Hints:
    """Keys the bank's signed callbacks (or our own passes) named, waiting for the resolver to ask the bank.
    What each callback said is kept only to count those the bank's own answer does not confirm."""

    def __init__(self, wakeup: Wakeup) -> None:
        self.results: dict[str, list[BankResult]] = {}
        self.wakeup = wakeup

    def report(self, result: BankResult) -> None:
        self.results.setdefault(result.idempotency_key, []).append(result)
        self.wakeup.set()

    def take(self) -> dict[str, list[BankResult]]:
        results, self.results = self.results, {}
        return results


@dataclass
class DisbursementDeps:
    settings: DisbursementSettings
    bank: BankGateway
    payee_cipher: FieldCipher
    due: Wakeup = field(default_factory=Wakeup)
    """Wakes the sender: payments fell due (set after the commit that made them due)."""
    resolver: Wakeup = field(default_factory=Wakeup)
    """Wakes the resolver: a callback arrived, or a cancellation waits for the bank."""
    hints: Hints = field(init=False)

    def __post_init__(self) -> None:
        self.hints = Hints(self.resolver)
