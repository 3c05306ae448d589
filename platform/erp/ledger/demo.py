"""Sample postings for the demo tenant of `make run`: a sale, a purchase, a pending hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from erp.ledger import services
from erp.ledger.commands import EntryIn, PostTransaction
from erp.ledger.models import Account


def seed(s: Session) -> None:
    ids = dict(s.execute(select(Account.code, Account.id)).all())
    if not ids:
        return
    cur = s.scalar(select(Account.currency).where(Account.code == "1000")) or "USD"
    now = datetime.now(UTC)

    def post(
        desc: str, lines: list[tuple[str, int]], days_ago: int, status: str = "posted"
    ) -> None:
        services.post_transaction(
            s,
            PostTransaction(
                description=desc,
                entries=[EntryIn(ids[code], amount, cur) for code, amount in lines],
                effective_at=now - timedelta(days=days_ago),
                status=status,
                metadata={"source": "demo"},
            ),
        )

    post("Owner invests", [("1010", 500_000), ("3000", -500_000)], 20)
    post("Stock purchase", [("1200", 120_000), ("2000", -120_000)], 15)
    post("Sale #1001", [("1100", 34_500), ("4000", -30_000), ("2100", -4_500)], 10)
    post("Cost of sale #1001", [("5000", 18_000), ("1200", -18_000)], 10)
    post("Customer pays #1001", [("1010", 34_500), ("1100", -34_500)], 5)
    post("Rent", [("6000", 80_000), ("1010", -80_000)], 3)
    post("Card hold for supplies", [("6000", 7_500), ("1010", -7_500)], 0, status="pending")
