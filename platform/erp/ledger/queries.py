"""Reads: transactions, entries and balances. Balances never scan an account's history:
they sum `balance_deltas` (per account, UTC day and writer slot) and `balance_hours`
(the same per UTC hour) for the part of `as_of`'s day nearer its edge, corrected by the
entries between `as_of` and the nearer end of its hour (see `_window`)."""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, TextClause, or_, select, text
from sqlalchemy.orm import Session

from erp.db import call_one, explicit_tenant
from erp.errors import Problem
from erp.ledger.commands import Balance, EntryView, TransactionView
from erp.ledger.models import Account, Entry, Transaction
from erp.pagination import Page, paginate


def _entries(s: Session, tx_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[EntryView]]:
    """The entries of each transaction, in a stable order (account, amount)."""
    entries: dict[uuid.UUID, list[EntryView]] = defaultdict(list)
    for r in s.execute(
        select(Entry.transaction_id, Entry.id, Entry.account_id, Entry.amount, Entry.currency)
        .where(Entry.transaction_id.in_(tx_ids))
        .order_by(Entry.account_id, Entry.amount)
    ):
        entries[r.transaction_id].append(EntryView(r.id, r.account_id, r.amount, r.currency))
    return entries


def entries_of(s: Session, tx_id: uuid.UUID) -> list[EntryView]:
    return _entries(s, [tx_id])[tx_id]


_LINKS = text("""
    SELECT t.id,
           (SELECT r.id FROM ledger.transactions r WHERE r.reverses_id = t.id) AS reversed_by_id,
           (SELECT a.id FROM ledger.transactions a WHERE a.adjusts_id = t.id) AS adjusted_by_id
      FROM ledger.transactions t WHERE t.id = ANY(:ids)
""")


def hydrate(s: Session, txs: list[Transaction]) -> list[TransactionView]:
    """Views of `txs` with their entries and derived links, in three queries."""
    if not txs:
        return []
    ids = [t.id for t in txs]
    entries = _entries(s, ids)
    links = {r.id: r for r in s.execute(_LINKS, {"ids": ids})}
    return [
        TransactionView(
            id=t.id,
            description=t.description,
            status=t.status,
            kind=t.kind,
            effective_at=t.effective_at,
            posted_at=t.posted_at,
            created_at=t.created_at,
            metadata=t.metadata_,
            reverses_id=t.reverses_id,
            reversed_by_id=links[t.id].reversed_by_id,
            adjusts_id=t.adjusts_id,
            adjusted_by_id=links[t.id].adjusted_by_id,
            entries=entries[t.id],
        )
        for t in txs
    ]


def get_transaction(s: Session, tx_id: uuid.UUID) -> TransactionView:
    tx = s.scalars(
        select(Transaction).where(Transaction.id == tx_id).execution_options(populate_existing=True)
    ).one_or_none()
    if tx is None:
        raise Problem("not-found")
    return hydrate(s, [tx])[0]


def _as_json(value: str) -> list[Any]:
    """A query-string value matches metadata holding it as a string, or as the number
    or boolean it spells ("5" matches {"n": 5} and {"n": "5"})."""
    try:
        parsed = json.loads(value)
    except ValueError:
        return [value]
    return [value, parsed] if isinstance(parsed, int | float | bool) else [value]


def transactions_query(
    account_id: uuid.UUID | None = None,
    status: str | None = None,
    effective_from: datetime | None = None,
    effective_to: datetime | None = None,
    metadata_key: str | None = None,
    metadata_value: str | None = None,
) -> Select[Any]:
    stmt = select(Transaction)
    if account_id is not None:
        stmt = stmt.where(
            select(Entry.id)
            .where(Entry.transaction_id == Transaction.id, Entry.account_id == account_id)
            .exists()
        )
    if status is not None:
        stmt = stmt.where(Transaction.status == status)
    if effective_from is not None:
        stmt = stmt.where(Transaction.effective_at >= effective_from)
    if effective_to is not None:
        stmt = stmt.where(Transaction.effective_at < effective_to)
    if metadata_key is not None and metadata_value is not None:
        stmt = stmt.where(
            or_(
                *(
                    Transaction.metadata_.contains({metadata_key: v})
                    for v in _as_json(metadata_value)
                )
            )
        )
    elif metadata_key is not None:
        stmt = stmt.where(Transaction.metadata_.has_key(metadata_key))
    return stmt


_BALANCES_SQL = """
    WITH d AS (  -- days through `through_day`, then +/- some hours of the next day
        SELECT account_id, sum(posted) AS posted, sum(pending) AS pending
          FROM (SELECT account_id, posted, pending_dr + pending_cr AS pending
                  FROM ledger.balance_deltas
                 WHERE {deltas}account_id = ANY(:ids) AND day <= :through_day
                UNION ALL
                SELECT account_id, :hsign * posted, :hsign * (pending_dr + pending_cr)
                  FROM ledger.balance_hours
                 WHERE {hours}account_id = ANY(:ids) AND hour >= :h_lo AND hour < :h_hi) u
         GROUP BY account_id
    ), w AS (  -- every entry in the window, whatever its status: an index-only scan
        SELECT account_id, sum(amount) AS total
          FROM ledger.entries
         WHERE {entries}account_id = ANY(:ids) AND effective_at > :lo AND effective_at < :hi
         GROUP BY account_id
    ), x AS (  -- the window's entries of pending and voided transactions: few
        SELECT e.account_id, sum(e.amount) FILTER (WHERE t.status = 'pending') AS pending,
               sum(e.amount) AS unposted
          FROM ledger.transactions t
          JOIN ledger.entries e ON e.tenant_id = t.tenant_id AND e.transaction_id = t.id
         WHERE {transactions}t.status <> 'posted' AND t.effective_at > :lo AND t.effective_at < :hi
           AND e.account_id = ANY(:ids)
         GROUP BY e.account_id
    )
    SELECT a.id, a.currency,
           coalesce(d.posted, 0)
             + :sign * (coalesce(w.total, 0) - coalesce(x.unposted, 0)) AS posted,
           coalesce(d.pending, 0) + :sign * coalesce(x.pending, 0) AS pending
      FROM ledger.accounts a
      LEFT JOIN d ON d.account_id = a.id
      LEFT JOIN w ON w.account_id = a.id
      LEFT JOIN x ON x.account_id = a.id
     WHERE {accounts}a.id = ANY(:ids)
"""
_BALANCES = text(
    _BALANCES_SQL.format(deltas="", hours="", entries="", transactions="", accounts="")
)
#: The same, filtered by tenant by hand: only for the bench's RLS ceiling, a BYPASSRLS
#: login (erp.db.explicit_tenant); everywhere else RLS adds the tenant to every table.
_BALANCES_BY_TENANT = text(
    _BALANCES_SQL.format(
        deltas="tenant_id = :tenant AND ",
        hours="tenant_id = :tenant AND ",
        entries="tenant_id = :tenant AND ",
        transactions="t.tenant_id = :tenant AND ",
        accounts="a.tenant_id = :tenant AND ",
    )
)


#: One account's balance as one row, whatever happens (no account: a row of NULLs),
#: with psycopg placeholders: for `erp.db.call_one`, so a balance read can go to
#: PostgreSQL with BEGIN, the tenant pin and COMMIT as one message.
def _one_row(clause: TextClause) -> str:
    """`clause` (SQLAlchemy `:name` parameters) as one row with psycopg's `%(name)s`."""
    sql = re.sub(r"(?<!:):([a-z_]+)", r"%(\1)s", clause.text)
    return f"SELECT b.* FROM (SELECT 1) AS one LEFT JOIN ({sql}) AS b ON true"


_BALANCE_ONE = _one_row(_BALANCES)
_BALANCE_ONE_BY_TENANT = _one_row(_BALANCES_BY_TENANT)
_MICROSECOND = timedelta(microseconds=1)


def _window(as_of: datetime) -> dict[str, Any]:
    """Where the sums stop: whole days through `through_day` (the day before `as_of`'s
    before its noon, its own day after), then `hsign` times the hours in [h_lo, h_hi)
    (the hours of `as_of`'s day between that edge and the nearer end of `as_of`'s hour),
    then `sign` times the entries in (lo, hi): those of [hour start, as_of] added, or of
    (as_of, hour end) taken off. So a read sums at most half an hour of entries."""
    at = as_of.astimezone(UTC)
    day = at.date()
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    hour = at.replace(minute=0, second=0, microsecond=0)
    if at - hour < timedelta(minutes=30):
        edge, entries = hour, {"lo": hour - _MICROSECOND, "hi": at + _MICROSECOND, "sign": 1}
    else:
        edge = hour + timedelta(hours=1)
        entries = {"lo": at, "hi": edge, "sign": -1}
    if at - start < timedelta(hours=12):
        days = {"through_day": day - timedelta(days=1), "hsign": 1, "h_lo": start, "h_hi": edge}
    else:
        days = {"through_day": day, "hsign": -1, "h_lo": edge, "h_hi": start + timedelta(days=1)}
    return {**days, **entries}


def balances_statement(
    account_ids: list[uuid.UUID], as_of: datetime, tenant: uuid.UUID | None = None
) -> tuple[TextClause, dict[str, Any]]:
    """The balance query and its parameters (for `balances`, and for EXPLAIN in bench/);
    with `tenant`, the variant that filters by it (see `_BALANCES_BY_TENANT`)."""
    params = {"ids": list(account_ids), **_window(as_of)}
    if tenant is None:
        return _BALANCES, params
    return _BALANCES_BY_TENANT, {**params, "tenant": tenant}


def balances(
    s: Session, account_ids: list[uuid.UUID], as_of: datetime | None = None
) -> dict[uuid.UUID, Balance]:
    """Posted and pending balances as of `as_of` (inclusive on effective_at; default now)."""
    when = as_of or datetime.now(UTC)
    rows = s.execute(*balances_statement(account_ids, when, explicit_tenant(s)))
    return {
        r.id: Balance(r.id, when, int(r.posted), int(r.pending), r.currency.strip()) for r in rows
    }


def balance(s: Session, account_id: uuid.UUID, as_of: datetime | None = None) -> Balance:
    """One account's balance, in one `call_one` (one round trip in a one-flight scope)."""
    when = as_of or datetime.now(UTC)
    tenant = explicit_tenant(s)
    params: dict[str, Any] = {"ids": [account_id], **_window(when)}
    if tenant is not None:
        params["tenant"] = tenant
    row = call_one(s, _BALANCE_ONE if tenant is None else _BALANCE_ONE_BY_TENANT, params)
    if row[0] is None:
        raise Problem("not-found")
    account, currency, posted, pending = row
    return Balance(account, when, int(posted), int(pending), currency.strip())


def account_entries_query(account_id: uuid.UUID) -> Select[Any]:
    """An account's entries, less those of voided transactions (they never counted)."""
    return (
        select(Entry)
        .join(
            Transaction,
            (Transaction.tenant_id == Entry.tenant_id) & (Transaction.id == Entry.transaction_id),
        )
        .where(Entry.account_id == account_id, Transaction.status != "voided")
    )


def accounts_query(include_archived: bool = True) -> Select[Any]:
    stmt = select(Account)
    if not include_archived:
        stmt = stmt.where(Account.archived.is_(False))
    return stmt


# -- lists (cursor-paginated, API.md Lists) ---------------------------------------------


def accounts_page(
    s: Session, include_archived: bool, cursor: str | None, limit: int
) -> Page[Account]:
    return paginate(
        s,
        accounts_query(include_archived),
        list_name="ledger.accounts",
        sort=Account.created_at,
        id_col=Account.id,
        cursor=cursor,
        limit=limit,
    )


def account_entries_page(
    s: Session, account_id: uuid.UUID, cursor: str | None, limit: int
) -> dict[str, Any]:
    """The account's entries (voided ones excluded) with their transaction's status."""
    page: Page[Entry] = paginate(
        s,
        account_entries_query(account_id),
        list_name=f"ledger.entries.{account_id}",
        sort=Entry.effective_at,
        id_col=Entry.id,
        cursor=cursor,
        limit=limit,
    )
    status = dict(
        s.execute(
            select(Transaction.id, Transaction.status).where(
                Transaction.id.in_({e.transaction_id for e in page.items})
            )
        ).all()
    )
    items = [
        {
            "id": e.id,
            "transaction_id": e.transaction_id,
            "amount": e.amount,
            "currency": e.currency,
            "effective_at": e.effective_at,
            "status": status[e.transaction_id],
        }
        for e in page.items
    ]
    return {"items": items, "next_cursor": page.next_cursor}


def transactions_page(
    s: Session, filters: dict[str, Any], cursor: str | None, limit: int
) -> dict[str, Any]:
    page: Page[Transaction] = paginate(
        s,
        transactions_query(**filters),
        list_name="ledger.transactions",
        sort=Transaction.effective_at,
        id_col=Transaction.id,
        cursor=cursor,
        limit=limit,
    )
    return {"items": hydrate(s, page.items), "next_cursor": page.next_cursor}
