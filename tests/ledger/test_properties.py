"""Property-based test of the ledger: a Hypothesis state machine against an in-memory model.

Rules drive the API (Flask test client, one fresh tenant per example): balanced
postings of 2-4 entries in two currencies, pending holds, posting (in full or for
less) and voiding them, reversals, month closes. The model predicts every status
code (including 422 insufficient-funds on a guarded account and period-closed,
409 for a second reversal or a settled transaction); after every step the API's
balances (now and as of a past time), the trial balance and the account entries
must agree with it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.ledger.conftest import Books, open_books

WINDOW = timedelta(days=90)
DEBIT_NORMAL = ("asset", "expense")
#: code -> (type, currency, guard) of the accounts the machine posts to (3100 only
#: receives year-end closings).
TRACKED = {
    "1000": ("asset", "USD", "none"),
    "2000": ("liability", "USD", "none"),
    "4000": ("revenue", "USD", "none"),
    "6000": ("expense", "USD", "none"),
    "G": ("asset", "USD", "non_negative"),
    "E1": ("asset", "EUR", "none"),
    "E2": ("liability", "EUR", "none"),
}
SETTINGS = settings(
    max_examples=15,
    stateful_step_count=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass
class ModelTx:
    id: str
    status: str  # pending | posted | voided
    at: datetime
    entries: list[tuple[str, int]]  # (account id, signed amount)
    reversed: bool = False


def month_of(at: datetime) -> date:
    return at.astimezone(UTC).date().replace(day=1)


def month_end(first: date) -> datetime:
    nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return datetime(nxt.year, nxt.month, 1, tzinfo=UTC) - timedelta(microseconds=1)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


class LedgerMachine(RuleBasedStateMachine):
    client: Any = None
    ops_headers: dict[str, str] = {}

    def __init__(self) -> None:
        super().__init__()
        self.books: Books = open_books(self.client, self.ops_headers)
        for code, (type_, currency, guard) in TRACKED.items():
            if code in self.books.accounts:
                continue
            r = self.books.call(
                "POST",
                "/accounts",
                json={
                    "code": code,
                    "name": f"Account {code}",
                    "type": type_,
                    "currency": currency,
                    "guard": guard,
                },
            )
            assert r.status_code == 201, r.get_json()
            self.books.accounts[code] = r.get_json()["id"]
        r = self.books.get("/accounts?limit=200")
        self.meta: dict[str, dict[str, Any]] = {a["id"]: a for a in r.get_json()["items"]}
        self.code = {a["id"]: a["code"] for a in self.meta.values()}
        self.by_currency: dict[str, list[str]] = defaultdict(list)
        for code, (_, currency, _) in TRACKED.items():
            self.by_currency[currency].append(self.books.accounts[code])
        self.now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        self.txs: dict[str, ModelTx] = {}
        self.closed: set[date] = set()
        self.rng = random.Random(0)

    # -- the model ----------------------------------------------------------------------

    def balance(self, account_id: str, as_of: datetime | None = None) -> tuple[int, int]:
        posted = pending = 0
        for tx in self.txs.values():
            if as_of is not None and tx.at > as_of:
                continue
            for acct, amount in tx.entries:
                if acct != account_id:
                    continue
                if tx.status == "posted":
                    posted += amount
                elif tx.status == "pending":
                    pending += amount
        return posted, pending

    def available(self, account_id: str) -> int:
        """Normal-side balance over all dates, less pending outflows (the guard's view)."""
        sign = 1 if self.meta[account_id]["type"] in DEBIT_NORMAL else -1
        total = 0
        for tx in self.txs.values():
            for acct, amount in tx.entries:
                if acct != account_id:
                    continue
                if tx.status == "posted" or (tx.status == "pending" and sign * amount < 0):
                    total += sign * amount
        return total

    def short_of_funds(self, entries: list[tuple[str, int]]) -> bool:
        for acct, amount in entries:
            if self.meta[acct]["guard"] != "non_negative":
                continue
            sign = 1 if self.meta[acct]["type"] in DEBIT_NORMAL else -1
            if sign * amount < 0 and self.available(acct) + sign * amount < 0:
                return True
        return False

    def add(self, body: dict[str, Any], status: str | None = None) -> ModelTx:
        tx = ModelTx(
            id=body["id"],
            status=status or body["status"],
            at=parse_time(body["effective_at"]),
            entries=[(e["account_id"], e["amount"]) for e in body["entries"]],
        )
        self.txs[tx.id] = tx
        return tx

    def months(self) -> list[date]:
        """The months the window touches that have ended (closable)."""
        first, last = month_of(self.now - WINDOW), month_of(datetime.now(UTC))
        out = []
        while first < last:
            out.append(first)
            first = month_end(first).date() + timedelta(days=1)
        return [m for m in out if month_end(m) < datetime.now(UTC)]

    # -- drawing ------------------------------------------------------------------------

    def draw_entries(self, data: st.DataObject) -> tuple[str, list[tuple[str, int]]]:
        currency = data.draw(st.sampled_from(sorted(self.by_currency)), label="currency")
        accounts = self.by_currency[currency]
        n = data.draw(st.integers(2, min(4, len(accounts))), label="n_entries")
        chosen = data.draw(st.permutations(accounts), label="accounts")[:n]
        amount = st.integers(1, 5_000).flatmap(lambda v: st.sampled_from([v, -v]))
        amounts = data.draw(st.lists(amount, min_size=n - 1, max_size=n - 1), label="amounts")
        if sum(amounts) == 0:
            amounts[0] = amounts[0] + 1 if amounts[0] != -1 else 1
        amounts.append(-sum(amounts))
        return currency, list(zip(chosen, amounts, strict=True))

    def draw_time(self, data: st.DataObject, label: str) -> datetime:
        seconds = data.draw(st.integers(0, int(WINDOW.total_seconds())), label=label)
        return self.now - timedelta(seconds=seconds)

    # -- rules ----------------------------------------------------------------------------

    @initialize(rng=st.randoms(use_true_random=False))
    def seed(self, rng: random.Random) -> None:
        self.rng = rng

    @rule(data=st.data(), status=st.sampled_from(["posted", "pending"]))
    def post(self, data: st.DataObject, status: str) -> None:
        currency, entries = self.draw_entries(data)
        at = self.draw_time(data, "effective_at")
        r = self.books.call(
            "POST",
            "/transactions",
            json={
                "description": "property",
                "effective_at": at.isoformat(),
                "status": status,
                "entries": [
                    {"account_id": a, "amount": n, "currency": currency} for a, n in entries
                ],
            },
        )
        body = r.get_json()
        event(f"post {status}: {r.status_code} {body.get('type', '')}")
        if month_of(at) in self.closed:
            assert (r.status_code, body["type"]) == (422, "/problems/period-closed"), body
        elif self.short_of_funds(entries):
            assert (r.status_code, body["type"]) == (422, "/problems/insufficient-funds"), body
        else:
            assert r.status_code == 201, body
            assert body["status"] == status
            assert parse_time(body["effective_at"]) == at
            assert (body["posted_at"] is not None) == (status == "posted")
            self.add(body)

    @precondition(lambda self: self.txs)
    @rule(data=st.data(), action=st.sampled_from(["post", "void"]), partial=st.booleans())
    def settle(self, data: st.DataObject, action: str, partial: bool) -> None:
        pending = [tx_id for tx_id, tx in self.txs.items() if tx.status == "pending"]
        # mostly a pending transaction; sometimes any (a settled one must be 409)
        mostly_pending = pending and data.draw(st.integers(0, 3), label="pick pending")
        pool = pending if mostly_pending else list(self.txs)
        tx = self.txs[data.draw(st.sampled_from(pool), label="transaction")]
        full = max(amount for _, amount in tx.entries)
        partial = partial and action == "post"  # void takes no amount
        amount = data.draw(st.integers(1, full + 5), label="amount") if partial else None
        body_in = {} if amount is None else {"amount": amount}
        r = self.books.call("POST", f"/transactions/{tx.id}/{action}", json=body_in)
        body = r.get_json()
        event(f"{action} {'partial' if partial else 'full'}: {r.status_code}")
        if tx.status != "pending":
            assert (r.status_code, body["type"]) == (409, "/problems/conflict"), body
            return
        if action == "post" and amount is not None and (len(tx.entries) != 2 or amount > full):
            assert (r.status_code, body["type"]) == (422, "/problems/validation"), body
            return
        assert r.status_code == 200, body
        tx.status = "posted" if action == "post" else "voided"
        assert body["status"] == tx.status
        if action == "post" and amount is not None and amount < full:
            difference = full - amount
            adjustment = self.books.get(f"/transactions/{body['adjusted_by_id']}").get_json()
            assert adjustment["adjusts_id"] == tx.id
            assert adjustment["kind"] == "adjustment"
            expected = sorted((a, -difference if n > 0 else difference) for a, n in tx.entries)
            assert sorted((e["account_id"], e["amount"]) for e in adjustment["entries"]) == expected
            self.add(adjustment)
        else:
            assert body["adjusted_by_id"] is None

    @precondition(lambda self: self.txs)
    @rule(data=st.data(), dated=st.booleans())
    def reverse(self, data: st.DataObject, dated: bool) -> None:
        tx = self.txs[data.draw(st.sampled_from(list(self.txs)), label="transaction")]
        at = self.draw_time(data, "reversal_at") if dated else None
        r = self.books.call(
            "POST",
            f"/transactions/{tx.id}/reverse",
            json={"effective_at": at.isoformat()} if at else {},
        )
        body = r.get_json()
        event(f"reverse: {r.status_code} {body.get('type', '')}")
        mirrored = [(a, -n) for a, n in tx.entries]
        if tx.status != "posted" or tx.reversed:
            assert (r.status_code, body["type"]) == (409, "/problems/conflict"), body
        elif at is not None and month_of(at) in self.closed:
            assert (r.status_code, body["type"]) == (422, "/problems/period-closed"), body
        elif self.short_of_funds(mirrored):
            assert (r.status_code, body["type"]) == (422, "/problems/insufficient-funds"), body
        else:
            assert r.status_code == 201, body
            assert body["reverses_id"] == tx.id
            assert sorted((e["account_id"], e["amount"]) for e in body["entries"]) == sorted(
                mirrored
            )
            if at is not None:
                assert parse_time(body["effective_at"]) == at
            tx.reversed = True
            self.add(body)
            again = self.books.call("POST", f"/transactions/{tx.id}/reverse", json={})
            assert again.status_code == 409, again.get_json()

    @precondition(lambda self: set(self.months()) - self.closed)
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        months = self.months()
        # mostly a month still open; sometimes any (closing twice must be 409)
        mostly_open = data.draw(st.integers(0, 3), label="pick open")
        pool = [m for m in months if m not in self.closed] if mostly_open else months
        month = data.draw(st.sampled_from(pool), label="month")
        path = f"/periods/{month:%Y-%m}/close"
        r = self.books.call("POST", path)
        event(f"close: {r.status_code}")
        if month in self.closed:
            assert r.status_code == 409, r.get_json()
            return
        pending = [
            tx for tx in self.txs.values() if tx.status == "pending" and month_of(tx.at) == month
        ]
        if pending:
            assert r.status_code == 409, r.get_json()
            for tx in pending:
                action = data.draw(st.sampled_from(["post", "void"]), label="settle")
                settled = self.books.call("POST", f"/transactions/{tx.id}/{action}", json={})
                assert settled.status_code == 200, settled.get_json()
                tx.status = "posted" if action == "post" else "voided"
            r = self.books.call("POST", path)
        if month.month == 12 and self.open_months_before_year_end(month.year):
            assert r.status_code == 409, r.get_json()
            return
        assert r.status_code == 200, r.get_json()
        self.closed.add(month)
        if month.month == 12:  # the year's other months close with it
            self.closed.update(date(month.year, m, 1) for m in range(1, 12))
        closing = r.get_json()["closing_transaction_id"]
        expected = self.year_end_entries(month) if month.month == 12 else []
        if not expected:
            assert closing is None
            return
        body = self.books.get(f"/transactions/{closing}").get_json()
        assert body["kind"] == "closing"
        assert sorted((e["account_id"], e["amount"]) for e in body["entries"]) == expected
        self.add(body)

    def open_months_before_year_end(self, year: int) -> bool:
        return any(
            tx.status != "voided"
            and tx.at.year == year
            and tx.at.month < 12
            and month_of(tx.at) not in self.closed
            for tx in self.txs.values()
        )

    def year_end_entries(self, december: date) -> list[tuple[str, int]]:
        at = month_end(december)
        entries: list[tuple[str, int]] = []
        net: dict[str, int] = defaultdict(int)
        for account_id, meta in self.meta.items():
            if meta["type"] not in ("revenue", "expense"):
                continue
            posted, _ = self.balance(account_id, at)
            if posted:
                entries.append((account_id, -posted))
                net[meta["currency"]] += posted
        for currency, amount in net.items():
            if amount:
                retained = next(
                    a
                    for a, m in self.meta.items()
                    if m.get("role") == "retained_earnings" and m["currency"] == currency
                )
                entries.append((retained, amount))
        return sorted(entries)

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def balances_now_match(self) -> None:
        r = self.books.get("/accounts?limit=200")
        assert r.status_code == 200
        for account in r.get_json()["items"]:
            balance = account["balance"]
            assert (balance["posted"], balance["pending"]) == self.balance(account["id"]), (
                self.code[account["id"]]
            )

    @invariant()
    def balances_as_of_match(self) -> None:
        as_of = self.now - timedelta(seconds=self.rng.randint(0, int(WINDOW.total_seconds())))
        for code in self.rng.sample(sorted(self.code.values()), 2):
            account_id = self.books.accounts[code]
            r = self.books.get(
                f"/accounts/{account_id}/balance", query_string={"as_of": as_of.isoformat()}
            )
            body = r.get_json()
            assert r.status_code == 200, body
            assert parse_time(body["as_of"]) == as_of
            assert (body["posted"], body["pending"]) == self.balance(account_id, as_of), (
                self.code[account_id],
                as_of,
            )

    @invariant()
    def trial_balance_balances(self) -> None:
        as_of = self.now - timedelta(seconds=self.rng.randint(0, int(WINDOW.total_seconds())))
        for query in [{}, {"as_of": as_of.isoformat()}][self.rng.randint(0, 1) :]:
            r = self.books.get("/reports/trial-balance", query_string=query)
            report = r.get_json()
            assert r.status_code == 200, report
            cutoff = as_of if query else None
            expected: dict[str, dict[str, int]] = defaultdict(lambda: {"debit": 0, "credit": 0})
            for row in report["rows"]:
                posted, _ = self.balance(row["account_id"], cutoff)
                assert (row["debit"], row["credit"]) == (max(posted, 0), max(-posted, 0)), row
                expected[row["currency"]]["debit"] += row["debit"]
                expected[row["currency"]]["credit"] += row["credit"]
            assert {r["account_id"] for r in report["rows"]} == set(self.code)
            for total in report["totals"]:
                assert total["debit"] == total["credit"], total
                assert total == {"currency": total["currency"], **expected[total["currency"]]}
            assert {t["currency"] for t in report["totals"]} == set(expected)

    @invariant()
    def balance_is_the_sum_of_entries(self) -> None:
        account_id = self.books.accounts[self.rng.choice(sorted(TRACKED))]
        seen: set[str] = set()
        sums = {"posted": 0, "pending": 0}
        last: tuple[datetime, str] | None = None
        cursor = None
        while True:
            query = {"limit": "5", **({"cursor": cursor} if cursor else {})}
            r = self.books.get(f"/accounts/{account_id}/entries", query_string=query)
            page = r.get_json()
            assert r.status_code == 200, page
            for item in page["items"]:
                assert item["id"] not in seen
                seen.add(item["id"])
                key = (parse_time(item["effective_at"]), item["id"])
                assert last is None or key < last, "entries are newest first"
                last = key
                assert item["status"] == self.txs[item["transaction_id"]].status
                if item["status"] in sums:
                    sums[item["status"]] += item["amount"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert (sums["posted"], sums["pending"]) == self.balance(account_id)
        assert len(seen) >= sum(
            1
            for tx in self.txs.values()
            if tx.status != "voided"
            for a, _ in tx.entries
            if a == account_id
        )


@pytest.mark.slow
def test_ledger_matches_its_model(client: Any, ops_headers: dict[str, str]) -> None:
    machine = type(
        "BoundLedgerMachine", (LedgerMachine,), {"client": client, "ops_headers": ops_headers}
    )
    run_state_machine_as_test(machine, settings=SETTINGS)
