"""Financial reports from posted entries: trial balance, balance sheet, income statement.

Balances follow the API's sign rule (debit +, credit -); reports present debit and
credit columns, or normal-side amounts, as positive integers in minor units.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from erp.ledger import queries
from erp.ledger.models import DEBIT_NORMAL, Account


def _posted_balances(s: Session, as_of: datetime) -> list[tuple[Account, int]]:
    accounts = list(s.scalars(select(Account).order_by(Account.code)))
    found = queries.balances(s, [a.id for a in accounts], as_of)
    return [(a, found[a.id].posted) for a in accounts]


def trial_balance(s: Session, as_of: datetime | None = None) -> dict[str, Any]:
    when = as_of or datetime.now(UTC)
    rows = []
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"debit": 0, "credit": 0})
    for account, bal in _posted_balances(s, when):
        if bal == 0 and account.archived:
            continue
        debit, credit = max(bal, 0), max(-bal, 0)
        rows.append(
            {
                "account_id": account.id,
                "code": account.code,
                "name": account.name,
                "type": account.type,
                "currency": account.currency,
                "debit": debit,
                "credit": credit,
            }
        )
        totals[account.currency]["debit"] += debit
        totals[account.currency]["credit"] += credit
    return {
        "as_of": when,
        "rows": rows,
        "totals": [{"currency": c, **t} for c, t in sorted(totals.items())],
    }


def balance_sheet(s: Session, as_of: datetime | None = None) -> dict[str, Any]:
    """Assets = liabilities + equity + current earnings, per currency."""
    when = as_of or datetime.now(UTC)
    sections: dict[str, list[dict[str, Any]]] = {"assets": [], "liabilities": [], "equity": []}
    sums: dict[str, dict[str, int]] = defaultdict(
        lambda: {"assets": 0, "liabilities": 0, "equity": 0, "current_earnings": 0}
    )
    section_of = {"asset": "assets", "liability": "liabilities", "equity": "equity"}
    for account, bal in _posted_balances(s, when):
        if account.type in ("revenue", "expense"):
            sums[account.currency]["current_earnings"] += -bal
            continue
        amount = bal if account.type in DEBIT_NORMAL else -bal
        if amount == 0 and account.archived:
            continue
        section = section_of[account.type]
        sections[section].append(
            {
                "account_id": account.id,
                "code": account.code,
                "name": account.name,
                "currency": account.currency,
                "amount": amount,
            }
        )
        sums[account.currency][section] += amount
    totals = []
    for currency, t in sorted(sums.items()):
        rhs = t["liabilities"] + t["equity"] + t["current_earnings"]
        totals.append(
            {
                "currency": currency,
                **t,
                "liabilities_and_equity": rhs,
                "balanced": t["assets"] == rhs,
            }
        )
    return {"as_of": when, **sections, "totals": totals}


_ACTIVITY = text("""
    SELECT e.account_id, sum(e.amount) AS amount
      FROM ledger.entries e
      JOIN ledger.transactions t ON t.tenant_id = e.tenant_id AND t.id = e.transaction_id
     WHERE t.status = 'posted' AND t.kind <> 'closing'
       AND t.effective_at >= :start AND t.effective_at < :end
     GROUP BY e.account_id
""")


def income_statement(s: Session, start: datetime, end: datetime) -> dict[str, Any]:
    """Revenue and expenses posted with effective_at in [start, end), closing entries excluded."""
    activity = {
        r.account_id: int(r.amount) for r in s.execute(_ACTIVITY, {"start": start, "end": end})
    }
    accounts = s.scalars(
        select(Account).where(Account.type.in_(("revenue", "expense"))).order_by(Account.code)
    )
    rows: dict[str, list[dict[str, Any]]] = {"revenue": [], "expenses": []}
    sums: dict[str, dict[str, int]] = defaultdict(lambda: {"revenue": 0, "expenses": 0})
    for account in accounts:
        raw = activity.get(account.id, 0)
        if raw == 0 and account.archived:
            continue
        key = "revenue" if account.type == "revenue" else "expenses"
        amount = -raw if key == "revenue" else raw
        rows[key].append(
            {
                "account_id": account.id,
                "code": account.code,
                "name": account.name,
                "currency": account.currency,
                "amount": amount,
            }
        )
        sums[account.currency][key] += amount
    totals = [
        {"currency": c, **t, "net_income": t["revenue"] - t["expenses"]}
        for c, t in sorted(sums.items())
    ]
    return {"from": start, "to": end, **rows, "totals": totals}


class _SafeWriter:
    """csv.writer that defuses spreadsheet formulas in text cells (CSV injection)."""

    def __init__(self, out: io.StringIO) -> None:
        self._w = csv.writer(out, lineterminator="\n")

    def writerow(self, row: list[Any]) -> None:
        self._w.writerow(
            [
                "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
                for v in row
            ]
        )


def to_csv(report: str, data: dict[str, Any]) -> str:
    """One CSV table per report: a row per account line, then the totals."""
    out = io.StringIO()
    w = _SafeWriter(out)
    if report == "trial-balance":
        w.writerow(["code", "name", "type", "currency", "debit", "credit"])
        for r in data["rows"]:
            w.writerow([r["code"], r["name"], r["type"], r["currency"], r["debit"], r["credit"]])
        for t in data["totals"]:
            w.writerow(["TOTAL", "", "", t["currency"], t["debit"], t["credit"]])
    elif report == "balance-sheet":
        w.writerow(["section", "code", "name", "currency", "amount"])
        for section in ("assets", "liabilities", "equity"):
            for r in data[section]:
                w.writerow([section, r["code"], r["name"], r["currency"], r["amount"]])
        for t in data["totals"]:
            w.writerow(["current_earnings", "", "", t["currency"], t["current_earnings"]])
            w.writerow(["total_assets", "", "", t["currency"], t["assets"]])
            w.writerow(
                ["total_liabilities_and_equity", "", "", t["currency"], t["liabilities_and_equity"]]
            )
    else:
        w.writerow(["section", "code", "name", "currency", "amount"])
        for section in ("revenue", "expenses"):
            for r in data[section]:
                w.writerow([section, r["code"], r["name"], r["currency"], r["amount"]])
        for t in data["totals"]:
            w.writerow(["net_income", "", "", t["currency"], t["net_income"]])
    return out.getvalue()
