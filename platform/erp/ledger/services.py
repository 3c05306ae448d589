"""The ledger's rules: accounts, posting, settling pending transactions, reversal.

Services take the session of the caller's transaction and never commit. A posting is
one SQL function call (policies/ledger_post.sql): PostgreSQL checks the facts and
refuses with named SQLSTATEs that become per-field problems; its triggers enforce
the same invariants again for every writer (policies/ledger_*.sql).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from erp import jsontext
from erp.db import call_one, pg_array
from erp.errors import Problem, field_problem, refusal
from erp.ledger import periods, queries
from erp.ledger.commands import EntryIn as EntryIn  # re-exported for other domains
from erp.ledger.commands import (
    EntryView,
    NewAccount,
    TransactionView,
)
from erp.ledger.commands import PostTransaction as PostTransaction  # re-exported
from erp.ledger.models import Account, Transaction
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

#: Transactions the ledger books itself: they settle what was booked before, so an
#: account archived since (archiving stops new entries) does not stop them.
_SYSTEM_KINDS = frozenset({"adjustment", "closing"})

#: A posting is one call, one round trip (policies/ledger_post.sql): it checks the
#: balance, the accounts, the period and the guards, takes the month's and the guards'
#: locks, and writes the transaction, its entries and (when posted) its outbox event.
_POST = """
    SELECT created_at, posted_at FROM ledger.post_transaction(
        %(id)s, %(description)s, %(status)s, %(kind)s, %(effective_at)s, %(metadata)s::jsonb,
        %(reverses_id)s, %(adjusts_id)s, %(entry_ids)s::uuid[], %(accounts)s::uuid[],
        %(amounts)s::bigint[], %(currencies)s::text[], %(event_id)s, %(event_payload)s::jsonb,
        %(allow_archived)s)
"""


def _text_array(codes: list[str]) -> str | list[str]:
    """Currency codes as an array literal when each is three capital letters (what the
    API accepts; no quoting needed, cheaper to bind), else as a list for psycopg."""
    if all(len(c) == 3 and c.isascii() and c.isalpha() and c.isupper() for c in codes):
        return "{" + ",".join(codes) + "}"
    return codes


def post_transaction(
    s: Session,
    cmd: PostTransaction,
    *,
    kind: str = "standard",
    reverses_id: uuid.UUID | None = None,
    adjusts_id: uuid.UUID | None = None,
    tx_id: uuid.UUID | None = None,
) -> TransactionView:
    """Post (or hold, with status "pending") a balanced transaction.

    `tx_id` is the transaction's id when the caller named it beforehand (an order step's
    stock moves reference the transaction that carries their cost).

    The schemas checked the shape; PostgreSQL judges the rest and refuses with a named
    SQLSTATE (EL001 unbalanced, EL002 period-closed, EL004 validation, EL005
    insufficient-funds) that becomes the Problem, naming the field at fault.
    """
    effective_at = cmd.effective_at or datetime.now(UTC)
    entries = cmd.entries
    entry_ids = [uuid.uuid4() for _ in entries]
    # Listed as the function stores them, by (account, amount): UUIDs order as their
    # text does, and as PostgreSQL orders uuid.
    order = sorted(range(len(entries)), key=lambda i: (entries[i].account_id, entries[i].amount))
    view = TransactionView(
        id=tx_id or uuid.uuid4(),
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
        entries=[
            EntryView(entry_ids[i], entries[i].account_id, entries[i].amount, entries[i].currency)
            for i in order
        ],
    )
    posted = cmd.status == "posted"
    params = {
        "id": view.id,
        "description": cmd.description,
        "status": cmd.status,
        "kind": kind,
        "effective_at": effective_at,
        "metadata": jsontext.dumps(cmd.metadata),
        "reverses_id": reverses_id,
        "adjusts_id": adjusts_id,
        # In the request's order: a refusal names entries.<index> of the request.
        "entry_ids": pg_array(entry_ids),
        "accounts": pg_array(e.account_id for e in entries),
        "amounts": pg_array(e.amount for e in entries),
        "currencies": _text_array([e.currency for e in entries]),
        "event_id": uuid.uuid4() if posted else None,
        # posted_at is the database's to say: the function adds it to the payload.
        "event_payload": jsontext.dumps(view.event_payload()) if posted else None,
        "allow_archived": kind in _SYSTEM_KINDS,
    }
    try:
        # On the session's psycopg connection (erp.db.call_one): measured, SQLAlchemy's
        # statement machinery was a quarter of this function's CPU.
        created_at, posted_at = call_one(s, _POST, params)
    except DBAPIError as exc:
        if (problem := refusal(exc)) is not None:
            raise problem from exc
        raise
    view.posted_at, view.created_at = posted_at, created_at
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


# -- for other domains ----------------------------------------------------------------


def role_account_id(s: Session, role: str, currency: str) -> uuid.UUID | None:
    """The account holding `role` in `currency` (None: no such account)."""
    return s.scalar(select(Account.id).where(Account.role == role, Account.currency == currency))


def role_balance(s: Session, role: str, currency: str, as_of: datetime | None = None) -> int | None:
    """The posted balance of the account holding `role` in `currency` (None: no such
    account). Inventory's valuation report compares its total with it."""
    account_id = s.scalar(
        select(Account.id).where(Account.role == role, Account.currency == currency)
    )
    if account_id is None:
        return None
    return queries.balance(s, account_id, as_of).posted
