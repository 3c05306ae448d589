"""The ledger's rules: accounts, posting, settling pending transactions, reversal.

Services take the session of the caller's transaction and never commit. Python
checks come first so that bad input gets a clear, per-field 422; PostgreSQL
enforces the same invariants again (policies/ledger_*.sql) for every writer.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from erp.errors import Problem, field_problem
from erp.fields import INT64_MAX
from erp.ledger import periods, queries
from erp.ledger.commands import (
    EntryIn,
    EntryView,
    NewAccount,
    PostTransaction,
    TransactionView,
)
from erp.ledger.models import DEBIT_NORMAL, Account, Transaction
from erp.webhooks import services as outbox

POSTED_EVENT = "ledger.transaction.posted"

# -- accounts ------------------------------------------------------------------------


def create_account(s: Session, cmd: NewAccount) -> Account:
    if cmd.parent_id is not None:
        parent = s.get(Account, cmd.parent_id)
        if parent is None:
            raise field_problem("validation", "parent_id", "Unknown account.")
        if parent.type != cmd.type:
            raise field_problem(
                "validation", "parent_id", f"The parent is a {parent.type} account, not {cmd.type}."
            )
    if s.scalar(select(Account.id).where(Account.code == cmd.code)) is not None:
        raise _code_taken(cmd)
    if cmd.role is not None and s.scalar(
        select(Account.id).where(Account.role == cmd.role, Account.currency == cmd.currency)
    ):
        raise _role_taken(cmd)
    account = Account(
        code=cmd.code,
        name=cmd.name,
        type=cmd.type,
        currency=cmd.currency,
        parent_id=cmd.parent_id,
        guard=cmd.guard,
        role=cmd.role,
    )
    s.add(account)
    try:
        with s.begin_nested():
            s.flush()
    except IntegrityError as exc:  # a concurrent create of the same code or role
        if _constraint(exc) == "uq_accounts_role":
            raise _role_taken(cmd) from exc
        raise _code_taken(cmd) from exc
    return account


def _code_taken(cmd: NewAccount) -> Problem:
    return Problem(
        "conflict",
        f"An account with code {cmd.code!r} exists.",
        errors={"code": ["Already used."]},
    )


def _role_taken(cmd: NewAccount) -> Problem:
    return Problem(
        "conflict",
        f"A {cmd.role} account in {cmd.currency} exists.",
        errors={"role": [f"Already used in {cmd.currency}."]},
    )


def _constraint(exc: IntegrityError) -> str:
    return getattr(getattr(exc.orig, "diag", None), "constraint_name", None) or ""


def get_account(s: Session, account_id: uuid.UUID) -> Account:
    account = s.get(Account, account_id)
    if account is None:
        raise Problem("not-found")
    return account


def update_account(
    s: Session, account_id: uuid.UUID, name: str | None, archived: bool | None
) -> Account:
    account = s.scalars(
        select(Account).where(Account.id == account_id).with_for_update()
    ).one_or_none()
    if account is None:
        raise Problem("not-found")
    if name is not None:
        account.name = name
    if archived is not None:
        account.archived = archived
    s.flush()
    return account


# -- posting -------------------------------------------------------------------------


def check_balanced(entries: list[EntryIn]) -> None:
    if len(entries) < 2:
        raise Problem(
            "unbalanced",
            "A transaction needs at least two entries.",
            errors={"entries": ["At least two entries are required."]},
        )
    totals: dict[str, int] = defaultdict(int)
    debits: dict[str, int] = defaultdict(int)
    for e in entries:
        totals[e.currency] += e.amount
        if e.amount > 0:
            debits[e.currency] += e.amount
    if off := sorted(c for c, t in totals.items() if t != 0):
        raise Problem(
            "unbalanced",
            "Entries must sum to zero in each currency; they do not in " + ", ".join(off) + ".",
            errors={"entries": [f"{c} sums to {totals[c]}, not 0." for c in off]},
        )
    if big := sorted(c for c, d in debits.items() if d > INT64_MAX):
        raise Problem(
            "validation",
            "The entries' sum would overflow a 64-bit integer.",
            errors={"entries": [f"{c} debits exceed 9223372036854775807." for c in big]},
        )


_VALIDATE = text(f"""
    SELECT a.id, a.currency, a.archived, a.guard, a.type, p.closed
      FROM (SELECT pg_advisory_xact_lock_shared({periods.PERIOD_LOCK_KEY})) AS lock
     CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM ledger.periods
                                         WHERE period = CAST(:month AS date)) AS closed) AS p
      LEFT JOIN ledger.accounts a ON a.id = ANY(:ids)
""")


#: Transactions the ledger books itself: they settle what was booked before, so an
#: account archived since (archiving stops new entries) does not stop them.
_SYSTEM_KINDS = frozenset({"adjustment", "closing"})


def _validate(
    s: Session, cmd: PostTransaction, when: datetime, *, allow_archived: bool = False
) -> dict[uuid.UUID, Any]:
    """One round trip: take the month's shared lock, read the accounts and whether the
    month is closed. (The insert trigger re-checks the month with a fresh snapshot.)"""
    month = periods.month_of(when)
    rows = s.execute(
        _VALIDATE,
        {
            "m": month.strftime("%Y-%m"),
            "month": month,
            "ids": list({e.account_id for e in cmd.entries}),
        },
    ).all()
    accounts = {r.id: r for r in rows if r.id is not None}
    for i, e in enumerate(cmd.entries):
        acct = accounts.get(e.account_id)
        if acct is None:
            raise field_problem("validation", f"entries.{i}.account_id", "Unknown account.")
        if acct.archived and not allow_archived:
            raise field_problem("validation", f"entries.{i}.account_id", "The account is archived.")
        if acct.currency != e.currency:
            raise field_problem(
                "validation", f"entries.{i}.currency", f"The account's currency is {acct.currency}."
            )
    if rows[0].closed:
        raise field_problem("period-closed", "effective_at", f"The period {when:%Y-%m} is closed.")
    return accounts


def _check_guards(s: Session, cmd: PostTransaction, accounts: dict[uuid.UUID, Any]) -> None:
    """non_negative accounts: the normal-side balance less pending outflows stays >= 0.

    Writers that would *reduce* a guarded balance serialize on a per-account lock
    (taken in account order, so two of them never deadlock) and then read the
    committed totals; writers that add to it need no lock.
    """
    change: dict[uuid.UUID, int] = defaultdict(int)
    for e in cmd.entries:
        acct = accounts[e.account_id]
        if acct.guard != "non_negative":
            continue
        normal = e.amount if acct.type in DEBIT_NORMAL else -e.amount
        if normal < 0:
            change[e.account_id] += normal
    for account_id in sorted(change):
        s.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtextextended("
                "current_setting('app.tenant_id') || ':guard:' || :a, 0))"
            ),
            {"a": str(account_id)},
        )
        available = queries.available_balance(s, account_id, accounts[account_id].type)
        if available + change[account_id] < 0:
            index = next(i for i, e in enumerate(cmd.entries) if e.account_id == account_id)
            raise Problem(
                "insufficient-funds",
                f"Account {account_id} has {available} available; the transaction needs "
                f"{-change[account_id]}.",
                errors={f"entries.{index}.amount": ["Insufficient funds."]},
            )


#: The transaction, its entries and (when posted) its outbox event, in one statement
#: (PostgreSQL runs every data-modifying CTE to completion, whether or not it is read).
_INSERT = text(
    """
    WITH t AS (
        INSERT INTO ledger.transactions (id, description, status, kind, effective_at,
            metadata, reverses_id, adjusts_id)
        VALUES (:id, :description, :status, :kind, :effective_at, CAST(:metadata AS jsonb),
            :reverses_id, :adjusts_id)
        RETURNING created_at, posted_at
    ), e AS (
        INSERT INTO ledger.entries (id, transaction_id, account_id, amount, currency,
            effective_at)
        SELECT u.id, :id, u.account_id, u.amount, u.currency, :effective_at
          FROM unnest(CAST(:e_ids AS uuid[]), CAST(:e_accounts AS uuid[]),
                      CAST(:e_amounts AS bigint[]), CAST(:e_currencies AS text[]))
               AS u(id, account_id, amount, currency)
        RETURNING 1
    ), o AS ("""
    + outbox.OUTBOX_CTE.format(
        source="t WHERE t.posted_at IS NOT NULL",
        patch="jsonb_build_object('posted_at', t.posted_at)",
    )
    + """)
    SELECT created_at, posted_at FROM t
    """
)


def post_transaction(
    s: Session,
    cmd: PostTransaction,
    *,
    kind: str = "standard",
    reverses_id: uuid.UUID | None = None,
    adjusts_id: uuid.UUID | None = None,
) -> TransactionView:
    """Post (or hold, with status "pending") a balanced transaction."""
    check_balanced(cmd.entries)
    effective_at = cmd.effective_at or datetime.now(UTC)
    accounts = _validate(s, cmd, effective_at, allow_archived=kind in _SYSTEM_KINDS)
    _check_guards(s, cmd, accounts)
    ordered = sorted(cmd.entries, key=lambda e: (str(e.account_id), e.amount))
    view = TransactionView(
        id=uuid.uuid4(),
        description=cmd.description,
        status=cmd.status,
        kind=kind,
        effective_at=effective_at,
        posted_at=None,
        created_at=effective_at,
        metadata=cmd.metadata,
        reverses_id=reverses_id,
        reversed_by_id=None,
        adjusts_id=adjusts_id,
        adjusted_by_id=None,
        entries=[EntryView(uuid.uuid4(), e.account_id, e.amount, e.currency) for e in ordered],
    )
    row = s.execute(
        _INSERT,
        {
            "id": view.id,
            "description": cmd.description,
            "status": cmd.status,
            "kind": kind,
            "effective_at": effective_at,
            "metadata": json.dumps(cmd.metadata),
            "reverses_id": reverses_id,
            "adjusts_id": adjusts_id,
            "e_ids": [e.id for e in view.entries],
            "e_accounts": [e.account_id for e in ordered],
            "e_amounts": [e.amount for e in ordered],
            "e_currencies": [e.currency for e in ordered],
            "event_id": uuid.uuid4(),
            "event_type": POSTED_EVENT,
            "event_payload": json.dumps(view.event_payload()),
        },
    ).one()
    view.posted_at, view.created_at = row.posted_at, row.created_at
    return view


# -- pending: post or void -----------------------------------------------------------


def _lock_transaction(s: Session, tx_id: uuid.UUID) -> Transaction:
    tx = s.scalars(
        select(Transaction)
        .where(Transaction.id == tx_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if tx is None:
        raise Problem("not-found")
    return tx


def settle(s: Session, tx_id: uuid.UUID, action: str, amount: int | None = None) -> TransactionView:
    """pending -> posted (optionally for a smaller amount) or -> voided; exactly one wins."""
    tx = _lock_transaction(s, tx_id)
    if tx.status != "pending":
        raise Problem("conflict", f"The transaction is {tx.status}, not pending.")
    periods.lock_month(s, periods.month_of(tx.effective_at), shared=True)
    entries = queries.entries_of(s, tx.id)
    held = next(e.amount for e in entries if e.amount > 0)
    if amount is not None and action == "post":
        _check_partial(entries, held, amount)
    s.execute(
        text("UPDATE ledger.transactions SET status = :st WHERE id = :id"),
        {"st": "posted" if action == "post" else "voided", "id": tx.id},
    )
    if action == "post":
        if amount is not None and amount < held:
            _adjust(s, tx, entries, held - amount)
        view = queries.get_transaction(s, tx.id)
        outbox.emit(s, POSTED_EVENT, view.event_payload())
        return view
    return queries.get_transaction(s, tx.id)


def _check_partial(entries: list[EntryView], held: int, amount: int) -> None:
    if len(entries) != 2:
        raise field_problem(
            "validation", "amount", "A smaller amount is possible only for a two-entry transaction."
        )
    if not 0 < amount <= held:
        raise field_problem(
            "validation", "amount", f"Must be between 1 and the held amount, {held}."
        )


def _adjust(s: Session, tx: Transaction, entries: list[EntryView], difference: int) -> None:
    """Book the part not taken back, in a linked posted adjustment transaction."""
    post_transaction(
        s,
        PostTransaction(
            description=f"Adjustment of {tx.id}: {difference} released",
            entries=[
                EntryIn(e.account_id, -difference if e.amount > 0 else difference, e.currency)
                for e in entries
            ],
            effective_at=tx.effective_at,
            metadata={"adjusts": str(tx.id)},
        ),
        kind="adjustment",
        adjusts_id=tx.id,
    )


# -- reversal ------------------------------------------------------------------------


def reverse(s: Session, tx_id: uuid.UUID, effective_at: datetime | None = None) -> TransactionView:
    """A new posted transaction with mirrored entries; a transaction is reversed once."""
    original = queries.get_transaction(s, tx_id)
    if original.status != "posted":
        raise Problem(
            "conflict",
            f"Only posted transactions are reversed; this is "
            f"{original.status} (void a pending one).",
        )
    if original.reversed_by_id is not None:
        raise Problem("conflict", f"Already reversed by {original.reversed_by_id}.")
    cmd = PostTransaction(
        description=f"Reversal of {original.id}"[:500],
        entries=[EntryIn(e.account_id, -e.amount, e.currency) for e in original.entries],
        effective_at=effective_at or datetime.now(UTC),
        metadata={"reverses": str(original.id)},
    )
    try:
        with s.begin_nested():
            return post_transaction(s, cmd, kind="reversal", reverses_id=original.id)
    except IntegrityError as exc:
        if "reverses_id" in _constraint(exc):
            raise Problem("conflict", "The transaction was reversed concurrently.") from exc
        raise
