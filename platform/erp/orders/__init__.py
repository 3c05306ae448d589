"""Orders: tax rates, customers, sales channels, orders and their steps (fulfilments,
payments, returns), and the shops' inbound messages. Tables: migration 0014."""

from __future__ import annotations

from datetime import timedelta

from erp.registry import Registry


def register(r: Registry) -> None:
    from erp.orders import routes

    # tax rates, customers, channels (routes.py); placement and intake add their own
    r.blueprint(routes.blp)
    r.usage_count("orders", "SELECT count(*) FROM orders.orders")
    r.usage_count("orders_channels", "SELECT count(*) FROM orders.channels")
    r.encrypted("orders.channels", "secret")
    r.encrypted("orders.channels", "previous_secret")
    r.catalog(
        append_only=[
            "orders.fulfilments",
            "orders.fulfilment_lines",
            "orders.payments",
            "orders.returns",
            "orders.return_lines",
        ]
    )

    # -- placing and reading orders (placement*.py; policies/orders_place.sql):
    # EO101 a placement's validation, EO102 an external_id used with another body.
    from erp.orders import placement_routes
    from erp.orders.placement import CREATED_EVENT

    r.blueprint(placement_routes.blp)
    r.sqlstate("EO101", "validation", "The order failed validation.")
    r.sqlstate("EO102", "conflict", "The external_id is already used.", field="external_id")
    r.events(CREATED_EVENT)

    # -- intake from shops (intake*.py, jobs.py; policies/orders_intake.sql): the hook
    # (a plain blueprint: no API key, outside the OpenAPI document), the inbound list,
    # and the sweep that enqueues messages Redis lost or never queued.
    from erp.orders import intake_routes

    r.pages(intake_routes.hooks)
    # its usual case (a known channel, a valid signature) before Flask: erp/fastpath.py
    r.fast_path(r"/hooks/v1/channels/(?P<channel_id>[^/]+)/orders", intake_routes.fast_receive)
    r.blueprint(intake_routes.blp)
    r.every(timedelta(seconds=5), "erp.orders.jobs.sweep", name="orders.sweep", queue="orders")
    r.catalog(
        definers={
            "app.inbound_channel(uuid)": "erp_auth",
            "app.tenants_with_inbound_to_sweep(interval,integer)": "erp_auth",
        }
    )

    # -- the steps (steps*.py): cancel, fulfil, pay, return; each emits its event
    from erp.orders import steps, steps_routes

    r.blueprint(steps_routes.blp)
    r.events(*steps.STEP_EVENTS)
