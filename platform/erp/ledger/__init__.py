"""The double-entry ledger: accounts, transactions, entries, periods, reports."""

from __future__ import annotations

from erp.registry import Registry


def register(r: Registry) -> None:
    from erp.ledger import cli, demo, provisioning, routes
    from erp.ledger.services import POSTED_EVENT

    r.blueprint(routes.blp)
    r.template_section("ledger", provisioning.validate, provisioning.apply, order=10)
    r.usage_count("ledger_accounts", "SELECT count(*) FROM ledger.accounts")
    r.usage_count("ledger_transactions", "SELECT count(*) FROM ledger.transactions")
    # Raised by policies/ledger_*.sql: the database is the one judge of these rules.
    r.sqlstate(
        "EL001",
        "unbalanced",
        "Entries must be at least two and sum to zero in each currency.",
        field="entries",
    )
    r.sqlstate("EL002", "period-closed", "The accounting period is closed.", field="effective_at")
    r.sqlstate("EL003", "conflict", "Ledger history is immutable; that change is not allowed.")
    # Raised by ledger.post_transaction (policies/ledger_post.sql), always with a DETAIL
    # naming the field(s): unknown, archived or other-currency accounts, debits past 64
    # bits; a non_negative account that would go below zero.
    r.sqlstate("EL004", "validation", "The entries failed validation.", field="entries")
    r.sqlstate("EL005", "insufficient-funds", "Insufficient funds.", field="entries")
    r.events(POSTED_EVENT)
    r.cli(cli.group)
    r.demo(demo.seed)
    r.catalog(
        append_only=["ledger.entries"],
        # policies/ledger_balances.sql: the only writers of ledger.balance_deltas and
        # ledger.balance_hours; owned by erp_owner, which FORCE RLS still confines to
        # the caller's tenant
        definers={
            f"ledger.{fn}": "erp_owner"
            for fn in (
                "after_entries_insert()",
                "after_transaction_settled()",
                "compact_balance_deltas(date)",
                "after_entries_insert_hours()",
                "after_transaction_settled_hours()",
                "compact_balance_hours(date)",
            )
        },
    )
