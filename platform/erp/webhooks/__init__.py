"""Outbound webhooks: the outbox, endpoints, fan-out, signed deliveries and retries."""

from __future__ import annotations

from datetime import timedelta

from erp.registry import Registry


def register(r: Registry) -> None:
    from erp.webhooks import cli, routes
    from erp.webhooks.commands import DISABLED_EVENT

    r.blueprint(routes.blp)
    r.cli(cli.group)  # erp webhooks listen: the push path (erp/webhooks/listener.py)
    r.events(DISABLED_EVENT)
    r.usage_count(
        "webhook_endpoints", "SELECT count(*) FROM webhooks.endpoints WHERE deleted_at IS NULL"
    )
    # The retry clock and the safety net: fan out new events, re-enqueue what is due
    # (retries, and jobs Redis lost). Cheap when there is nothing to do (one discovery).
    r.every(
        timedelta(seconds=2), "erp.webhooks.jobs.sweep", name="webhooks.sweep", queue="webhooks"
    )
    r.encrypted("webhooks.endpoints", "secret")
    r.encrypted("webhooks.endpoints", "previous_secret")
    r.catalog(
        append_only=["webhooks.outbox_events", "webhooks.attempts"],
        # policies/webhooks.sql: the tenants with events to fan out or messages due
        definers={"app.tenants_with_due_webhooks(integer)": "erp_auth"},
    )
