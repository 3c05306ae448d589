"""Closing a month: later postings dated in it are refused; closing December also posts
the year-end closing transaction into retained earnings. Final and audited."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from erp import audit
from erp.context import current_actor
from erp.errors import Problem
from erp.ledger import periods, queries, services
from erp.ledger.commands import EntryIn, PostTransaction
from erp.ledger.models import Account, Period
from erp.ledger.periods import PeriodView


def close_period(s: Session, value: str) -> PeriodView:
    first = periods.parse_period(value)
    if periods.month_end(first) >= datetime.now(UTC):
        raise Problem("conflict", f"{value} has not ended yet.")
    periods.lock_month(s, first, shared=False)
    if s.scalar(select(Period.id).where(Period.period == first)) is not None:
        raise Problem("conflict", f"{value} is already closed.")
    pending = s.execute(
        text(
            "SELECT count(*) FROM ledger.transactions WHERE status = 'pending' "
            "AND effective_at >= :start AND effective_at <= :end"
        ),
        {
            "start": datetime(first.year, first.month, 1, tzinfo=UTC),
            "end": periods.month_end(first),
        },
    ).scalar_one()
    if pending:
        raise Problem("conflict", f"{value} has {pending} pending transactions; post or void them.")
    closing_id = None
    if first.month == 12:
        _close_rest_of_year(s, first.year)
        closing_id = _post_year_end(s, first.year)
    period = Period(period=first, closed_by=current_actor.get(), closing_transaction_id=closing_id)
    s.add(period)
    s.flush()
    audit.tenant_event(
        s,
        "ledger.period.closed",
        "period",
        value,
        closing_transaction_id=str(closing_id) if closing_id else None,
    )
    return periods.view(period)


def _close_rest_of_year(s: Session, year: int) -> None:
    """Year-end close needs January..November closed wherever they hold postings; the
    empty ones close with the year, so no later posting lands in a closed year."""
    months = [date(year, m, 1) for m in range(1, 12)]
    for month in months:
        periods.lock_month(s, month, shared=False)
    open_months = (
        s.execute(
            text("""
            SELECT DISTINCT m FROM (
                SELECT date_trunc('month', t.effective_at AT TIME ZONE 'UTC')::date AS m
                  FROM ledger.transactions t
                 WHERE t.effective_at >= :start AND t.effective_at < :dec
                   AND t.status <> 'voided'
            ) months
             WHERE NOT EXISTS (SELECT 1 FROM ledger.periods p WHERE p.period = months.m)
             ORDER BY 1
        """),
            {"start": datetime(year, 1, 1, tzinfo=UTC), "dec": datetime(year, 12, 1, tzinfo=UTC)},
        )
        .scalars()
        .all()
    )
    if open_months:
        names = ", ".join(m.strftime("%Y-%m") for m in open_months)
        raise Problem("conflict", f"Close {names} before closing the year {year}.")
    closed = set(s.scalars(select(Period.period).where(Period.period.in_(months))))
    for month in months:
        if month not in closed:
            s.add(Period(period=month, closed_by=current_actor.get()))
            audit.tenant_event(
                s, "ledger.period.closed", "period", month.strftime("%Y-%m"), year_end=True
            )


def _post_year_end(s: Session, year: int) -> object:
    """Move every revenue and expense balance into retained earnings, per currency."""
    at = periods.month_end(date(year, 12, 1))
    accounts = list(s.scalars(select(Account).where(Account.type.in_(("revenue", "expense")))))
    found = queries.balances(s, [a.id for a in accounts], at)
    entries: list[EntryIn] = []
    net: dict[str, int] = defaultdict(int)
    for account in accounts:
        posted = found[account.id].posted
        if posted:
            entries.append(EntryIn(account.id, -posted, account.currency))
            net[account.currency] += posted
    if not entries:
        return None
    for currency, amount in sorted(net.items()):
        if amount == 0:
            continue
        retained = s.scalar(
            select(Account.id).where(
                Account.role == "retained_earnings", Account.currency == currency
            )
        )
        if retained is None:
            raise Problem(
                "validation",
                f"No retained earnings account in {currency}; create one with role "
                "retained_earnings.",
                errors={"period": [f"No retained earnings account in {currency}."]},
            )
        entries.append(EntryIn(retained, amount, currency))
    view = services.post_transaction(
        s,
        PostTransaction(
            description=f"Year-end close {year}",
            entries=entries,
            effective_at=at,
            metadata={"year_end": str(year)},
        ),
        kind="closing",
    )
    return view.id
