"""Monthly periods (UTC calendar months) and the month lock postings and closing share.

Only closed months have a row; closing (ledger/closing.py) is final and audited."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from erp.errors import Problem
from erp.ledger.models import Period

PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class PeriodView:
    period: str
    status: str
    closed_at: datetime | None
    closed_by: str | None
    closing_transaction_id: object


def parse_period(value: str) -> date:
    m = PERIOD_RE.match(value)
    if not m:
        raise Problem("validation", "A period is YYYY-MM.", errors={"period": ["Must be YYYY-MM."]})
    return date(int(m.group(1)), int(m.group(2)), 1)


def month_end(first: date) -> datetime:
    """The last microsecond of the month starting at `first` (UTC)."""
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return datetime(nxt.year, nxt.month, 1, tzinfo=UTC) - timedelta(microseconds=1)


#: The advisory-lock key of one month of the current tenant, bound as :m (YYYY-MM):
#: postings hold it shared, closing the month holds it exclusively.
PERIOD_LOCK_KEY = "hashtextextended(current_setting('app.tenant_id') || ':period:' || :m, 0)"


def month_of(when: datetime) -> date:
    """The first day of `when`'s UTC month."""
    return when.astimezone(UTC).date().replace(day=1)


def lock_month(s: Session, first: date, *, shared: bool) -> None:
    lock = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    s.execute(text(f"SELECT {lock}({PERIOD_LOCK_KEY})"), {"m": first.strftime("%Y-%m")})


def view(p: Period) -> PeriodView:
    return PeriodView(
        p.period.strftime("%Y-%m"), "closed", p.closed_at, p.closed_by, p.closing_transaction_id
    )


def list_periods(s: Session) -> list[PeriodView]:
    return [view(p) for p in s.scalars(select(Period).order_by(Period.period.desc()))]
