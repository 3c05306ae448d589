"""Ledger endpoints (/api/v1/ledger): thin — parse, call one service, shape the reply."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from erp.extensions import Blueprint, db
from erp.fields import parse_uuid
from erp.http import json_response, one_flight
from erp.idempotency import idempotent
from erp.ledger import closing, periods, queries, reports, schemas, services
from erp.ledger.commands import Balance, EntryIn, NewAccount, PostTransaction, TransactionView
from erp.ledger.models import Account
from erp.pagination import ListArgs
from erp.principals import requires_scope

blp = Blueprint("ledger", __name__, url_prefix="/api/v1/ledger", description="Double-entry ledger")


def _with_balances(accounts: list[Account]) -> list[dict[str, Any]]:
    found = queries.balances(db.session, [a.id for a in accounts])
    return [{**_account_dict(a), "balance": _bal(found[a.id])} for a in accounts]


def _account_dict(a: Account) -> dict[str, Any]:
    return {c.key: getattr(a, c.key) for c in Account.__table__.columns if c.key != "tenant_id"}


def _bal(b: Balance) -> dict[str, Any]:
    return {"posted": b.posted, "pending": b.pending, "currency": b.currency}


@blp.route("/accounts")
class Accounts(MethodView):
    @requires_scope("ledger:read")
    @blp.arguments(schemas.AccountListArgs, location="query")
    @blp.response(200, schemas.AccountPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Accounts with their posted and pending balances, newest first."""
        page = queries.accounts_page(
            db.session, args["include_archived"], args["cursor"], args["limit"]
        )
        return {"items": _with_balances(page.items), "next_cursor": page.next_cursor}

    @requires_scope("ledger:write")
    @idempotent
    @blp.arguments(schemas.AccountIn)
    @blp.response(201, schemas.AccountOut)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Open an account; `code` is unique in the tenant."""
        return _with_balances([services.create_account(db.session, NewAccount(**body))])[0]


@blp.route("/accounts/<account_id>")
class AccountById(MethodView):
    @requires_scope("ledger:read")
    @blp.response(200, schemas.AccountOut)
    def get(self, account_id: str) -> dict[str, Any]:
        account = services.get_account(db.session, parse_uuid(account_id, "account_id"))
        return _with_balances([account])[0]

    @requires_scope("ledger:write")
    @blp.arguments(schemas.AccountPatch)
    @blp.response(200, schemas.AccountOut)
    def patch(self, body: dict[str, Any], account_id: str) -> dict[str, Any]:
        """Rename or archive (archived accounts take no new entries)."""
        account = services.update_account(
            db.session, parse_uuid(account_id, "account_id"), body.get("name"), body.get("archived")
        )
        return _with_balances([account])[0]


@blp.route("/accounts/<account_id>/balance")
@requires_scope("ledger:read")
@blp.arguments(schemas.AsOfArgs, location="query")
@blp.response(200, schemas.AccountBalanceOut)
@one_flight
def account_balance(args: dict[str, Any], account_id: str) -> Balance:
    """Posted and pending balance as of a time (inclusive on effective_at)."""
    return queries.balance(db.session, parse_uuid(account_id, "account_id"), args["as_of"])


@blp.route("/accounts/<account_id>/entries")
@requires_scope("ledger:read")
@blp.arguments(ListArgs, location="query")
@blp.response(200, schemas.AccountEntryPage)
def account_entries(args: dict[str, Any], account_id: str) -> dict[str, Any]:
    """The account's entries (voided ones excluded), newest effective_at first."""
    account = services.get_account(db.session, parse_uuid(account_id, "account_id"))
    return queries.account_entries_page(db.session, account.id, args["cursor"], args["limit"])


def _command(body: dict[str, Any]) -> PostTransaction:
    return PostTransaction(
        description=body["description"],
        entries=[EntryIn(**e) for e in body["entries"]],
        effective_at=body["effective_at"],
        status=body["status"],
        metadata=body["metadata"],
    )


@blp.route("/transactions")
class Transactions(MethodView):
    @requires_scope("ledger:read")
    @blp.arguments(schemas.TransactionListArgs, location="query")
    @blp.response(200, schemas.TransactionPage)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Transactions, newest effective_at first, filtered."""
        filters = {
            k: args.get(k)
            for k in (
                "account_id",
                "status",
                "effective_from",
                "effective_to",
                "metadata_key",
                "metadata_value",
            )
        }
        return queries.transactions_page(db.session, filters, args["cursor"], args["limit"])

    @requires_scope("ledger:write")
    @idempotent
    @blp.arguments(schemas.TransactionIn)
    @blp.response(201, schemas.TransactionOut)
    @one_flight
    def post(self, body: dict[str, Any]) -> Response:
        """Post a balanced transaction (or hold it with status "pending")."""
        return json_response(services.post_transaction(db.session, _command(body)).to_json(), 201)


@blp.route("/transactions/<tx_id>")
@requires_scope("ledger:read")
@blp.response(200, schemas.TransactionOut)
def get_transaction(tx_id: str) -> TransactionView:
    return queries.get_transaction(db.session, parse_uuid(tx_id, "transaction_id"))


@blp.route("/transactions/<tx_id>/post", methods=["POST"])
@requires_scope("ledger:write")
@idempotent
@blp.arguments(schemas.SettleIn)
@blp.response(200, schemas.TransactionOut)
def post_pending(body: dict[str, Any], tx_id: str) -> TransactionView:
    """Post a pending transaction, optionally for a smaller amount (two entries only)."""
    tid = parse_uuid(tx_id, "transaction_id")
    return services.settle(db.session, tid, "post", body["amount"])


@blp.route("/transactions/<tx_id>/void", methods=["POST"])
@requires_scope("ledger:write")
@idempotent
@blp.arguments(schemas.VoidIn)
@blp.response(200, schemas.TransactionOut)
def void_pending(body: dict[str, Any], tx_id: str) -> TransactionView:
    """Void a pending transaction: its entries stop counting anywhere."""
    return services.settle(db.session, parse_uuid(tx_id, "transaction_id"), "void")


@blp.route("/transactions/<tx_id>/reverse", methods=["POST"])
@requires_scope("ledger:write")
@idempotent
@blp.arguments(schemas.ReverseIn)
@blp.response(201, schemas.TransactionOut)
def reverse_transaction(body: dict[str, Any], tx_id: str) -> TransactionView:
    """Reverse a posted transaction once, with mirrored entries."""
    return services.reverse(db.session, parse_uuid(tx_id, "transaction_id"), body["effective_at"])


@blp.route("/periods")
@requires_scope("ledger:read")
@blp.response(200, schemas.PeriodList)
def list_periods() -> dict[str, Any]:
    """Closed periods, latest first (months without a row are open)."""
    return {"items": periods.list_periods(db.session), "next_cursor": None}


@blp.route("/periods/<period>/close", methods=["POST"])
@requires_scope("ledger:write")
@idempotent
@blp.response(200, schemas.PeriodOut)
def close_period(period: str) -> periods.PeriodView:
    """Close a month; closing YYYY-12 also posts the year-end close into retained earnings."""
    return closing.close_period(db.session, period)


def _report(name: str, data: dict[str, Any]) -> dict[str, Any] | Response:
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        return Response(
            reports.to_csv(name, data),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return data


@blp.route("/reports/trial-balance")
@requires_scope("ledger:read")
@blp.arguments(schemas.AsOfArgs, location="query")
@blp.response(200, schemas.TrialBalanceOut)
@blp.alt_response(200, content_type="text/csv", description="With Accept: text/csv")
def trial_balance(args: dict[str, Any]) -> dict[str, Any] | Response:
    return _report("trial-balance", reports.trial_balance(db.session, args["as_of"]))


@blp.route("/reports/balance-sheet")
@requires_scope("ledger:read")
@blp.arguments(schemas.AsOfArgs, location="query")
@blp.response(200, schemas.BalanceSheetOut)
@blp.alt_response(200, content_type="text/csv", description="With Accept: text/csv")
def balance_sheet(args: dict[str, Any]) -> dict[str, Any] | Response:
    return _report("balance-sheet", reports.balance_sheet(db.session, args["as_of"]))


@blp.route("/reports/income-statement")
@requires_scope("ledger:read")
@blp.arguments(schemas.RangeArgs, location="query")
@blp.response(200, schemas.IncomeStatementOut)
@blp.alt_response(200, content_type="text/csv", description="With Accept: text/csv")
def income_statement(args: dict[str, Any]) -> dict[str, Any] | Response:
    return _report(
        "income-statement", reports.income_statement(db.session, args["from_"], args["to"])
    )
