"""Inventory's rules. Services take the caller's session and never commit.

Stock changes are SQL function calls (policies/inventory.sql): `inventory.apply_move`
checks, locks and writes one move and returns its value without posting;
`inventory.post_value` posts a value to the ledger by account role; the stock events
are written at commit by the level-change trigger.
"""

from __future__ import annotations

CHANGED_EVENT = "stock.changed"
LOW_EVENT = "stock.low"
