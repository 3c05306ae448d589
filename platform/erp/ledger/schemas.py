"""The ledger API's shapes (API.md, Ledger)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from erp.fields import AwareDateTime, Currency, FastLoad, Metadata, StrictInt
from erp.ledger.models import ACCOUNT_TYPES, GUARDS, ROLES, STATUSES
from erp.pagination import ListArgs, page_schema

CODE_RE = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class BalanceOut(ma.Schema):
    posted = ma.fields.Integer()
    pending = ma.fields.Integer()
    currency = ma.fields.String()


class AccountIn(ma.Schema):
    code = ma.fields.String(
        required=True, validate=[ma.validate.Length(max=64), ma.validate.Regexp(CODE_RE)]
    )
    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=200))
    type = ma.fields.String(required=True, validate=ma.validate.OneOf(ACCOUNT_TYPES))
    currency = Currency(required=True)
    parent_id = ma.fields.UUID(load_default=None, allow_none=True)
    guard = ma.fields.String(load_default="none", validate=ma.validate.OneOf(GUARDS))
    role = ma.fields.String(load_default=None, allow_none=True, validate=ma.validate.OneOf(ROLES))


class AccountPatch(ma.Schema):
    name = ma.fields.String(validate=ma.validate.Length(min=1, max=200))
    archived = ma.fields.Boolean()


class AccountOut(ma.Schema):
    id = ma.fields.UUID()
    code = ma.fields.String()
    name = ma.fields.String()
    type = ma.fields.String()
    currency = ma.fields.String()
    parent_id = ma.fields.UUID(allow_none=True)
    archived = ma.fields.Boolean()
    guard = ma.fields.String()
    role = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    balance = ma.fields.Nested(BalanceOut)


class AccountListArgs(ListArgs):
    include_archived = ma.fields.Boolean(load_default=True)


AccountPage = page_schema(AccountOut, "AccountPage")


class EntryIn(FastLoad):
    account_id = ma.fields.UUID(required=True)
    amount = StrictInt(required=True, validate=ma.validate.Range(min=-(2**63) + 1, max=2**63 - 1))
    currency = Currency(required=True)

    @ma.validates("amount")
    def _nonzero(self, value: int, **_: Any) -> None:
        if value == 0:
            raise ma.ValidationError("Must not be zero.")


class TransactionIn(FastLoad):
    description = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=500))
    effective_at = AwareDateTime(load_default=None, allow_none=True)
    status = ma.fields.String(
        load_default="posted", validate=ma.validate.OneOf(["posted", "pending"])
    )
    metadata = Metadata(load_default=dict)
    entries = ma.fields.List(ma.fields.Nested(EntryIn), required=True)


class EntryOut(ma.Schema):
    id = ma.fields.UUID()
    account_id = ma.fields.UUID()
    amount = ma.fields.Integer()
    currency = ma.fields.String()


class TransactionOut(ma.Schema):
    id = ma.fields.UUID()
    description = ma.fields.String()
    status = ma.fields.String()
    kind = ma.fields.String()
    effective_at = ma.fields.DateTime()
    posted_at = ma.fields.DateTime(allow_none=True)
    created_at = ma.fields.DateTime()
    metadata = ma.fields.Dict()
    reverses_id = ma.fields.UUID(allow_none=True)
    reversed_by_id = ma.fields.UUID(allow_none=True)
    adjusts_id = ma.fields.UUID(allow_none=True)
    adjusted_by_id = ma.fields.UUID(allow_none=True)
    entries = ma.fields.List(ma.fields.Nested(EntryOut))


TransactionPage = page_schema(TransactionOut, "TransactionPage")


class TransactionListArgs(ListArgs):
    account_id = ma.fields.UUID()
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    effective_from = AwareDateTime()
    effective_to = AwareDateTime()
    metadata_key = ma.fields.String(validate=ma.validate.Length(min=1, max=64))
    metadata_value = ma.fields.String(validate=ma.validate.Length(max=500))

    @ma.validates_schema
    def _value_needs_key(self, data: dict[str, Any], **_: Any) -> None:
        if "metadata_value" in data and "metadata_key" not in data:
            raise ma.ValidationError("metadata_value needs metadata_key.", "metadata_value")


class VoidIn(ma.Schema):
    """No fields: voiding takes no amount."""


class SettleIn(ma.Schema):
    amount = StrictInt(load_default=None, allow_none=True, validate=ma.validate.Range(min=1))


class ReverseIn(ma.Schema):
    effective_at = AwareDateTime(load_default=None, allow_none=True)


class AsOfArgs(ma.Schema):
    as_of = AwareDateTime(load_default=None)


class AccountBalanceOut(ma.Schema):
    account_id = ma.fields.UUID()
    as_of = ma.fields.DateTime()
    posted = ma.fields.Integer()
    pending = ma.fields.Integer()
    currency = ma.fields.String()


class AccountEntryOut(ma.Schema):
    id = ma.fields.UUID()
    transaction_id = ma.fields.UUID()
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    effective_at = ma.fields.DateTime()
    status = ma.fields.String()


AccountEntryPage = page_schema(AccountEntryOut, "AccountEntryPage")


class PeriodOut(ma.Schema):
    period = ma.fields.String()
    status = ma.fields.String()
    closed_at = ma.fields.DateTime(allow_none=True)
    closed_by = ma.fields.String(allow_none=True)
    closing_transaction_id = ma.fields.UUID(allow_none=True)


#: At most twelve rows a year, so one page; the shape is every list's (API.md).
PeriodList = page_schema(PeriodOut, "PeriodList")


class RangeArgs(ma.Schema):
    from_ = AwareDateTime(required=True, data_key="from")
    to = AwareDateTime(required=True)

    @ma.validates_schema
    def _ordered(self, data: dict[str, Any], **_: Any) -> None:
        if data["from_"] >= data["to"]:
            raise ma.ValidationError("Must be after from.", "to")


class TrialBalanceRow(ma.Schema):
    account_id = ma.fields.UUID()
    code = ma.fields.String()
    name = ma.fields.String()
    type = ma.fields.String()
    currency = ma.fields.String()
    debit = ma.fields.Integer()
    credit = ma.fields.Integer()


class DebitCreditTotal(ma.Schema):
    currency = ma.fields.String()
    debit = ma.fields.Integer()
    credit = ma.fields.Integer()


class TrialBalanceOut(ma.Schema):
    as_of = ma.fields.DateTime()
    rows = ma.fields.List(ma.fields.Nested(TrialBalanceRow))
    totals = ma.fields.List(ma.fields.Nested(DebitCreditTotal))


class ReportLine(ma.Schema):
    account_id = ma.fields.UUID()
    code = ma.fields.String()
    name = ma.fields.String()
    currency = ma.fields.String()
    amount = ma.fields.Integer()


class BalanceSheetTotal(ma.Schema):
    currency = ma.fields.String()
    assets = ma.fields.Integer()
    liabilities = ma.fields.Integer()
    equity = ma.fields.Integer()
    current_earnings = ma.fields.Integer()
    liabilities_and_equity = ma.fields.Integer()
    balanced = ma.fields.Boolean()


class BalanceSheetOut(ma.Schema):
    as_of = ma.fields.DateTime()
    assets = ma.fields.List(ma.fields.Nested(ReportLine))
    liabilities = ma.fields.List(ma.fields.Nested(ReportLine))
    equity = ma.fields.List(ma.fields.Nested(ReportLine))
    totals = ma.fields.List(ma.fields.Nested(BalanceSheetTotal))


class IncomeTotal(ma.Schema):
    currency = ma.fields.String()
    revenue = ma.fields.Integer()
    expenses = ma.fields.Integer()
    net_income = ma.fields.Integer()


class IncomeStatementOut(ma.Schema):
    from_ = ma.fields.DateTime(data_key="from", attribute="from")
    to = ma.fields.DateTime()
    revenue = ma.fields.List(ma.fields.Nested(ReportLine))
    expenses = ma.fields.List(ma.fields.Nested(ReportLine))
    totals = ma.fields.List(ma.fields.Nested(IncomeTotal))
