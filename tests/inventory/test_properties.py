"""Property: after any sequence of moves through the API, the valuation report's total
equals the inventory account's ledger balance, each item's value is the sum of its
moves' signed values, every level equals the sum of its moves, and no available ever
goes below zero at a location that does not allow it. A model predicts which moves
are refused (insufficient stock) and their moving-average values."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import make_tenant
from tests.inventory.test_api import Api

KINDS = ("receipt", "issue", "transfer", "adjust_in", "adjust_in_at_cost", "adjust_out")
OPS = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, 1),  # item
        st.integers(0, 1),  # location
        st.integers(1, 40),  # quantity
        st.integers(0, 997),  # unit cost
    ),
    min_size=1,
    max_size=25,
)


def _half_up(value: int, quantity: int, on_hand: int) -> int:
    if on_hand <= 0:
        return 0
    return (2 * value * quantity + on_hand) // (2 * on_hand)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_valuation_equals_ledger_after_any_sequence(
    client: Any, ops_headers: dict[str, str], ops: list[tuple[str, int, int, int, int]]
) -> None:
    api = Api(client, make_tenant(client, ops_headers))
    locs = [
        api.main(),
        api.ok("POST", "/locations", {"code": "W2", "name": "w", "kind": "warehouse"})["id"],
    ]
    items = [api.item()["id"], api.item()["id"]]
    level = {(i, loc): 0 for i in range(2) for loc in range(2)}
    value = [0, 0]
    for kind, i, loc, q, cost in ops:
        body: dict[str, Any] = {"item_id": items[i], "quantity": q}
        total = level[(i, 0)] + level[(i, 1)]
        outward = kind in ("issue", "transfer", "adjust_out")
        if kind == "receipt":
            body |= {"kind": "receipt", "to_location_id": locs[loc], "unit_cost": cost}
            expected = q * cost
        elif kind == "issue":
            body |= {"kind": "issue", "from_location_id": locs[loc]}
        elif kind == "transfer":
            body |= {
                "kind": "transfer",
                "from_location_id": locs[loc],
                "to_location_id": locs[1 - loc],
            }
        elif kind == "adjust_out":
            body |= {"kind": "adjustment", "from_location_id": locs[loc], "reason_code": "lost"}
        else:
            body |= {"kind": "adjustment", "to_location_id": locs[loc], "reason_code": "found"}
            if kind == "adjust_in":
                body["unit_cost"] = cost
                expected = q * cost
            else:
                expected = _half_up(value[i], q, total)
        if kind in ("issue", "adjust_out"):
            expected = value[i] if q >= total > 0 else _half_up(value[i], q, total)
        r = api.call("POST", "/moves", body)
        if outward and q > level[(i, loc)]:
            assert r.status_code == 409, r.get_json()
            assert r.get_json()["errors"]["quantity"] == [f"{level[(i, loc)]} available."]
            continue
        assert r.status_code == 201, r.get_json()
        move = r.get_json()
        if kind == "transfer":
            assert move["value"] is None
            level[(i, loc)] -= q
            level[(i, 1 - loc)] += q
            continue
        assert move["value"] == expected
        assert (move["transaction_id"] is None) == (expected == 0)
        sign = -1 if outward else 1
        level[(i, loc)] += sign * q
        value[i] += sign * expected
    valuation = api.ok("GET", "/valuation")
    assert valuation["total"] == valuation["ledger_balance"] == sum(value)
    for i, item in enumerate(items):
        got = api.ok("GET", f"/items/{item}")
        assert (got["on_hand"], got["value"]) == (level[(i, 0)] + level[(i, 1)], value[i])
        for loc, loc_id in enumerate(locs):
            rows = api.ok("GET", f"/stock?item_id={item}&location_id={loc_id}")["items"]
            assert [x["on_hand"] for x in rows] in ([level[(i, loc)]], [])
            assert all(x["available"] >= 0 for x in rows)
