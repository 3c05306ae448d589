"""The ledger under real concurrency: many threads, many PostgreSQL connections, one tenant.

Through the service layer (one `db.unit_of_work` per transfer) and through a real
threaded HTTP server: money is neither created nor lost, guards hold, racing
settlements and reversals have exactly one winner, one Idempotency-Key makes one
transaction, and no deadlock or serialization failure ever reaches a client.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import text

from erp.errors import Problem
from erp.extensions import db
from erp.http import ErpFlask
from erp.ledger import services
from erp.ledger.commands import EntryIn, PostTransaction
from tests.ledger.conftest import open_books
from tests.ledger.helpers_concurrency import (
    LiveBooks,
    Reply,
    entry_sums,
    serve,
    tenant_rows,
    tenant_scalar,
    together,
)

THREADS = 16
FUNDING = 1_000
GUARDED = ("G1", "G2", "G3")
UNGUARDED = ("U1", "U2")


@pytest.fixture(scope="module")
def live_url(app: ErpFlask) -> Iterator[str]:
    with serve(app) as url:
        yield url


@pytest.fixture(autouse=True)
def _release_connections(app: ErpFlask) -> Iterator[None]:
    """A race leaves up to THREADS idle pooled connections; hand them back to the server
    (max_connections is shared by every xdist worker)."""
    yield
    with app.app_context():
        db.dispose()


@pytest.fixture
def live(live_url: str, client: Any, ops_headers: dict[str, str]) -> LiveBooks:
    """A fresh tenant on the default chart, reached through the live server."""
    books = open_books(client, ops_headers)
    return LiveBooks(live_url, books.tenant, dict(books.accounts))


def _bank(live: LiveBooks, funding: int = FUNDING) -> list[str]:
    """Five asset accounts (three guarded), each funded from owner's equity (3000)."""
    for code in GUARDED:
        live.open_account(code, guard="non_negative")
    for code in UNGUARDED:
        live.open_account(code)
    for code in (*GUARDED, *UNGUARDED):
        reply = live.post([(code, funding), ("3000", -funding)], description=f"fund {code}")
        assert reply.status == 201, reply.body
    return [*GUARDED, *UNGUARDED]


def _transactions(app_url: str, live: LiveBooks) -> int:
    return int(tenant_scalar(app_url, live.tenant.id, "SELECT count(*) FROM ledger.transactions"))


def assert_books_consistent(app_url: str, live: LiveBooks) -> dict[str, dict[str, Any]]:
    """Every balance is the sum of its entries; all of them sum to zero; guards hold;
    every transaction has at least two entries and sums to zero."""
    balances = live.balances()
    sums = entry_sums(app_url, live.tenant.id)
    for account_id, balance in balances.items():
        expected = sums.get(account_id, {"posted": 0, "pending": 0})
        assert (balance["posted"], balance["pending"]) == (
            expected["posted"],
            expected["pending"],
        ), account_id
    assert sum(b["posted"] for b in balances.values()) == 0
    assert sum(b["pending"] for b in balances.values()) == 0
    by_id = {v: k for k, v in live.accounts.items()}
    held = dict(
        tenant_rows(
            app_url,
            live.tenant.id,
            """SELECT e.account_id::text, sum(e.amount) FROM ledger.entries e
                 JOIN ledger.transactions t
                   ON t.tenant_id = e.tenant_id AND t.id = e.transaction_id
                WHERE t.status = 'pending' AND e.amount < 0 GROUP BY e.account_id""",
        )
    )
    for code in live.accounts:
        if code.startswith("G"):  # the tests' guarded asset accounts
            account_id = live.accounts[code]
            available = balances[account_id]["posted"] + held.get(account_id, 0)
            assert available >= 0, (code, balances[account_id], held.get(account_id))
    bad = tenant_scalar(
        app_url,
        live.tenant.id,
        """SELECT count(*) FROM (
               SELECT t.id FROM ledger.transactions t
                 LEFT JOIN ledger.entries e ON e.tenant_id = t.tenant_id AND e.transaction_id = t.id
                GROUP BY t.id HAVING count(e.id) < 2 OR coalesce(sum(e.amount), 0) <> 0) s""",
    )
    assert bad == 0
    return {by_id.get(k, k): v for k, v in balances.items()}


def _random_transfer(rng: random.Random, codes: list[str]) -> tuple[str, str, int]:
    src, dst = rng.sample(codes, 2)
    return src, dst, rng.randint(1, 400)


# -- the bank invariant ---------------------------------------------------------------


def test_bank_invariant_through_services(app: ErpFlask, live: LiveBooks, app_url: str) -> None:
    codes = _bank(live)
    before = _transactions(app_url, live)
    ids = {code: uuid.UUID(live.accounts[code]) for code in codes}
    per_thread = 25

    def transfer(s: Any, src: str, dst: str, amount: int) -> uuid.UUID:
        cmd = PostTransaction(
            description=f"{src}->{dst}",
            entries=[EntryIn(ids[src], -amount, "USD"), EntryIn(ids[dst], amount, "USD")],
        )
        return services.post_transaction(s, cmd).id

    def worker(i: int) -> Counter[str]:
        rng = random.Random(1000 + i)
        outcome: Counter[str] = Counter()
        with app.app_context():
            for _ in range(per_thread):
                src, dst, amount = _random_transfer(rng, codes)
                try:
                    db.unit_of_work(
                        lambda s, a=src, b=dst, n=amount: transfer(s, a, b, n),
                        tenant=live.tenant.id,
                    )
                    outcome["posted"] += 1
                except Problem as problem:
                    guarded = "guarded" if src in GUARDED else "unguarded"
                    outcome[f"refused {problem.slug} from {guarded}"] += 1
        return outcome

    total = sum(together(THREADS, worker), Counter())
    refused = total["refused insufficient-funds from guarded"]
    assert set(total) <= {"posted", "refused insufficient-funds from guarded"}, total
    assert refused > 0, "no guarded account ever ran short: the test proves little"
    assert total["posted"] + refused == THREADS * per_thread
    assert _transactions(app_url, live) == before + total["posted"]
    assert_books_consistent(app_url, live)


def test_bank_invariant_through_http(live: LiveBooks, app_url: str) -> None:
    codes = _bank(live)
    before = _transactions(app_url, live)
    per_thread = 25

    def worker(i: int) -> list[tuple[str, Reply]]:
        rng = random.Random(2000 + i)
        replies = []
        for _ in range(per_thread):
            src, dst, amount = _random_transfer(rng, codes)
            replies.append((src, live.post([(src, -amount), (dst, amount)])))
        return replies

    replies = [r for batch in together(THREADS, worker) for r in batch]
    statuses = Counter(reply.status for _, reply in replies)
    assert set(statuses) <= {201, 422}, [r.body for _, r in replies if r.status not in (201, 422)]
    for src, reply in replies:
        if reply.status == 422:
            assert reply.slug == "insufficient-funds", reply.body
            assert src in GUARDED
    assert statuses[422] > 0, "no guarded account ever ran short: the test proves little"
    created = {reply.body["id"] for _, reply in replies if reply.status == 201}
    assert len(created) == statuses[201]
    assert _transactions(app_url, live) == before + statuses[201]
    assert_books_consistent(app_url, live)


# -- opposing transfers and cycles: no deadlock reaches a client -------------------------


def test_opposing_transfers_and_cycles_never_fail(live: LiveBooks, app_url: str) -> None:
    codes = _bank(live, funding=1_000_000)
    a, b, c = GUARDED
    per_thread = 20

    def one(rng: random.Random, i: int) -> Reply:
        amount = rng.randint(1, 50)
        shape = i % 4
        if shape == 0:  # A -> B and B -> A
            lines = (
                [(a, -amount), (b, amount)] if rng.random() < 0.5 else [(b, -amount), (a, amount)]
            )
        elif shape == 1:  # a 3-cycle, one leg per transaction
            src, dst = rng.choice([(a, b), (b, c), (c, a)])
            lines = [(src, -amount), (dst, amount)]
        elif shape == 2:  # two guarded outflows in one transaction, listed in either order
            first, second, sink = rng.sample([a, b, c], 3)
            lines = [(first, -amount), (second, -amount), (sink, 2 * amount)]
        else:  # guarded and unguarded accounts mixed, four entries
            lines = [(a, -amount), (c, amount), ("U1", -amount), ("U2", amount)]
        rng.shuffle(lines)
        return live.post(lines)

    def worker(i: int) -> list[Reply]:
        rng = random.Random(3000 + i)
        return [one(rng, i) for _ in range(per_thread)]

    replies = [r for batch in together(THREADS, worker) for r in batch]
    failures = [(r.status, r.body) for r in replies if r.status != 201]
    assert failures == []
    balances = assert_books_consistent(app_url, live)
    assert sum(balances[code]["posted"] for code in codes) == 5 * 1_000_000


# -- pending: post and void race --------------------------------------------------------


def test_post_and_void_race_has_one_winner(live: LiveBooks, app_url: str) -> None:
    live.open_account("G1", guard="non_negative")
    assert live.post([("G1", 100_000), ("3000", -100_000)]).status == 201
    pairs, batch = 24, THREADS // 2
    held: list[tuple[str, int]] = []
    for i in range(pairs):
        amount = 100 + i
        reply = live.post([("G1", -amount), ("6000", amount)], status="pending")
        assert reply.status == 201, reply.body
        held.append((reply.body["id"], amount))
    assert live.balance("G1")["pending"] == -sum(amount for _, amount in held)

    def settle(tx_id: str, action: str, amount: int | None) -> Reply:
        body = {} if amount is None else {"amount": amount}
        return live.call("POST", f"/transactions/{tx_id}/{action}", body)

    expected_posted = 100_000
    for start in range(0, pairs, batch):
        group = held[start : start + batch]

        def race(k: int, group: list[tuple[str, int]] = group) -> Reply:
            tx_id, amount = group[k // 2]
            if k % 2:
                return settle(tx_id, "void", None)
            return settle(tx_id, "post", amount - 50 if k % 4 == 0 else None)

        replies = together(2 * len(group), race)
        for j, (tx_id, amount) in enumerate(group):
            posted, voided = replies[2 * j], replies[2 * j + 1]
            assert sorted([posted.status, voided.status]) == [200, 409], (posted.body, voided.body)
            loser = voided if posted.status == 200 else posted
            assert loser.slug == "conflict", loser.body
            current = live.call("GET", f"/transactions/{tx_id}")
            if posted.status == 200:
                assert current.body["status"] == "posted"
                partial = (2 * j) % 4 == 0
                expected_posted -= amount - 50 if partial else amount
                assert (current.body["adjusted_by_id"] is not None) == partial
            else:
                assert current.body["status"] == "voided"
                assert current.body["adjusted_by_id"] is None
    g1 = live.balance("G1")
    assert (g1["posted"], g1["pending"]) == (expected_posted, 0)
    assert_books_consistent(app_url, live)


# -- reversal: exactly one --------------------------------------------------------------


def test_concurrent_reversals_make_exactly_one(live: LiveBooks, app_url: str) -> None:
    racers = 8
    for round_ in range(4):
        original = live.post([("1000", 1_000 + round_), ("4000", -(1_000 + round_))])
        assert original.status == 201
        tx_id = original.body["id"]
        replies = together(
            racers, lambda _i, tx=tx_id: live.call("POST", f"/transactions/{tx}/reverse", {})
        )
        assert sorted(r.status for r in replies) == [201] + [409] * (racers - 1), [
            r.body for r in replies
        ]
        assert all(r.slug == "conflict" for r in replies if r.status == 409)
        winner = next(r for r in replies if r.status == 201)
        assert winner.body["reverses_id"] == tx_id
        count = tenant_scalar(
            app_url,
            live.tenant.id,
            "SELECT count(*) FROM ledger.transactions WHERE reverses_id = %s",
            (tx_id,),
        )
        assert count == 1
        assert (
            live.call("GET", f"/transactions/{tx_id}").body["reversed_by_id"] == winner.body["id"]
        )
    cash = live.balance("1000")
    assert (cash["posted"], cash["pending"]) == (0, 0)
    assert_books_consistent(app_url, live)


# -- idempotency ---------------------------------------------------------------------------


def test_one_idempotency_key_makes_one_transaction(live: LiveBooks, app_url: str) -> None:
    key = f"idem-{uuid.uuid4()}"
    description = f"once {key}"
    body = live.transfer_body([("1000", 4_200), ("4000", -4_200)], description=description)
    headers = {"Idempotency-Key": key}

    replies = together(20, lambda _i: live.call("POST", "/transactions", body, headers=headers))
    created = [r for r in replies if r.status == 201]
    assert created, [r.body for r in replies]
    assert {r.body["id"] for r in created} == {created[0].body["id"]}
    fresh = [r for r in created if r.headers.get("idempotent-replayed") != "true"]
    assert len(fresh) == 1, [r.headers for r in created]
    for reply in replies:
        if reply.status != 201:
            assert (reply.status, reply.slug) == (409, "idempotency-in-flight"), reply.body
    count = tenant_scalar(
        app_url,
        live.tenant.id,
        "SELECT count(*) FROM ledger.transactions WHERE description = %s",
        (description,),
    )
    assert count == 1

    again = live.call("POST", "/transactions", body, headers=headers)
    assert again.status == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.body == fresh[0].body

    other = live.transfer_body([("1000", 4_201), ("4000", -4_201)], description=description)
    mismatch = live.call("POST", "/transactions", other, headers=headers)
    assert (mismatch.status, mismatch.slug) == (409, "idempotency-mismatch"), mismatch.body
    assert live.balance("1000")["posted"] == 4_200
    assert_books_consistent(app_url, live)


# -- balance guards ----------------------------------------------------------------------------


class _Watcher:
    """Polls a guarded account while a race runs; remembers the lowest available balance."""

    def __init__(self, live: LiveBooks, code: str) -> None:
        self.live, self.code = live, code
        self.lowest: int | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="guard-watcher")

    def _run(self) -> None:
        while not self.stop.is_set():
            balance = self.live.balance(self.code)
            available = balance["posted"] + min(balance["pending"], 0)
            self.lowest = available if self.lowest is None else min(self.lowest, available)

    def __enter__(self) -> _Watcher:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(30)


def _withdrawals(live: LiveBooks, n: int, amount: int, status: str = "posted") -> list[Reply]:
    return together(
        n,
        lambda _i: live.post([("G1", -amount), ("6000", amount)], status=status),
    )


def test_guard_holds_under_concurrent_withdrawals(live: LiveBooks, app_url: str) -> None:
    live.open_account("G1", guard="non_negative")
    assert live.post([("G1", 1_000), ("3000", -1_000)]).status == 201

    with _Watcher(live, "G1") as watcher:
        replies = _withdrawals(live, 20, 100)
    assert Counter(r.status for r in replies) == {201: 10, 422: 10}
    assert all(r.slug == "insufficient-funds" for r in replies if r.status == 422)
    assert live.balance("G1")["posted"] == 0
    assert watcher.lowest is not None
    assert watcher.lowest >= 0
    assert_books_consistent(app_url, live)


def test_pending_holds_count_against_the_guard(live: LiveBooks, app_url: str) -> None:
    live.open_account("G1", guard="non_negative")
    assert live.post([("G1", 1_000), ("3000", -1_000)]).status == 201
    hold = live.post([("G1", -600), ("6000", 600)], status="pending")
    assert hold.status == 201

    replies = _withdrawals(live, 10, 100)
    assert Counter(r.status for r in replies) == {201: 4, 422: 6}
    g1 = live.balance("G1")
    assert (g1["posted"], g1["pending"]) == (600, -600)

    # holds race withdrawals for the same funds
    void = live.call("POST", f"/transactions/{hold.body['id']}/void", {})
    assert void.status == 200
    with _Watcher(live, "G1") as watcher:
        replies = together(
            12,
            lambda i: live.post(
                [("G1", -100), ("6000", 100)], status="pending" if i % 2 else "posted"
            ),
        )
    assert Counter(r.status for r in replies) == {201: 6, 422: 6}
    g1 = live.balance("G1")
    assert g1["posted"] + g1["pending"] == 0
    assert watcher.lowest is not None
    assert watcher.lowest >= 0
    assert_books_consistent(app_url, live)


# -- closing a month while postings into it race --------------------------------------------


def _last_month() -> datetime:
    first = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=1)).replace(day=1)


def test_closing_a_month_races_postings_into_it(live: LiveBooks, app_url: str) -> None:
    """Close waits for the month's postings and refuses while one is pending; once it
    succeeds no posting lands in the month and none is left pending there."""
    month = _last_month()
    path = f"/periods/{month:%Y-%m}/close"
    posters, per_thread = THREADS - 1, 10
    closed = threading.Event()

    def poster(i: int) -> list[tuple[str, Reply, bool]]:
        rng = random.Random(4000 + i)
        out: list[tuple[str, Reply, bool]] = []
        for n in range(500):
            after_close = closed.is_set()
            at = month + timedelta(seconds=rng.randint(0, 27 * 86400))
            # pending holds early on only, or the close could wait for a moment without any
            status = "pending" if n < per_thread and rng.random() < 0.3 else "posted"
            reply = live.post(
                [("1000", 10), ("4000", -10)], effective_at=at.isoformat(), status=status
            )
            out.append(("post", reply, after_close))
            if after_close:
                return out
            if reply.status == 201 and status == "pending":
                action = rng.choice(["post", "void"])
                settled = live.call("POST", f"/transactions/{reply.body['id']}/{action}", {})
                out.append(("settle", settled, False))
        raise AssertionError("the month never closed")

    def closer() -> list[tuple[str, Reply, bool]]:
        out: list[tuple[str, Reply, bool]] = []
        while True:
            reply = live.call("POST", path)
            out.append(("close", reply, False))
            if reply.status != 409:
                closed.set()
                return out
            time.sleep(0.01)

    replies = [
        r
        for batch in together(posters + 1, lambda i: closer() if i == posters else poster(i))
        for r in batch
    ]
    closes = [r for kind, r, _ in replies if kind == "close"]
    assert closes[-1].status == 200, closes[-1].body
    assert all(r.slug == "conflict" for r in closes[:-1])
    for kind, reply, after_close in replies:
        if kind == "post" and after_close:
            assert (reply.status, reply.slug) == (422, "period-closed"), reply.body
        elif kind == "post":
            assert reply.status == 201 or reply.slug == "period-closed", reply.body
        elif kind == "settle":
            assert reply.status == 200, reply.body
    in_month = tenant_rows(
        app_url,
        live.tenant.id,
        "SELECT status, count(*) FROM ledger.transactions WHERE kind <> 'closing' "
        "AND effective_at >= %s AND effective_at < %s::timestamptz + interval '1 month' "
        "GROUP BY status",
        (month, month),
    )
    assert "pending" not in dict(in_month)
    created = sum(1 for kind, r, _ in replies if kind == "post" and r.status == 201)
    assert sum(n for _, n in in_month) == created
    assert_books_consistent(app_url, live)


# -- folding balance deltas while postings land on the same days --------------------------------


def test_compaction_races_postings(app: ErpFlask, live: LiveBooks, app_url: str) -> None:
    done = threading.Event()
    today = datetime.now(UTC)

    def poster(i: int) -> list[Reply]:
        rng = random.Random(5000 + i)
        out = []
        for _ in range(20):
            at = today - timedelta(seconds=rng.randint(0, 4 * 86400))
            src, dst = rng.sample(["1000", "1010", "1100"], 2)
            amount = rng.randint(1, 500)
            status = rng.choice(["posted", "posted", "pending"])
            reply = live.post(
                [(src, -amount), (dst, amount)], effective_at=at.isoformat(), status=status
            )
            out.append(reply)
            if reply.status == 201 and status == "pending" and rng.random() < 0.5:
                out.append(live.call("POST", f"/transactions/{reply.body['id']}/void", {}))
        return out

    def compactor() -> int:
        merged = 0
        tomorrow = (today + timedelta(days=1)).date()
        with app.app_context():
            while not done.is_set():
                merged += db.unit_of_work(
                    lambda s: int(
                        s.execute(
                            text(
                                "SELECT ledger.compact_balance_deltas(:d)"
                                " + ledger.compact_balance_hours(:d)"
                            ),
                            {"d": tomorrow},
                        ).scalar_one()
                    ),
                    tenant=live.tenant.id,
                )
                time.sleep(0.005)
        return merged

    finished: list[int] = []

    def work(i: int) -> Any:
        if i == 0:
            return compactor()
        try:
            return poster(i)
        finally:
            finished.append(i)
            if len(finished) == n_posters:
                done.set()

    n_posters = 11
    results = together(n_posters + 1, work)
    assert results[0] > 0, "compaction never merged anything: the test proves little"
    replies = [r for batch in results[1:] for r in batch]
    assert {r.status for r in replies} <= {200, 201}, [r.body for r in replies if r.status >= 300]
    assert_books_consistent(app_url, live)
    for days in (1, 2, 3):
        as_of = today - timedelta(days=days)
        expected = entry_sums(app_url, live.tenant.id, as_of)
        for code in ("1000", "1010", "1100"):
            account_id = live.accounts[code]
            reply = live.call(
                "GET", f"/accounts/{account_id}/balance?as_of={quote(as_of.isoformat())}"
            )
            assert reply.status == 200, reply.body
            want = expected.get(account_id, {"posted": 0, "pending": 0})
            assert (reply.body["posted"], reply.body["pending"]) == (
                want["posted"],
                want["pending"],
            )
