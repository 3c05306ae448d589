"""What the domains contribute to the core, collected from each domain's `register()`.

Each domain package (`erp/<domain>/__init__.py`) exposes `register(r: Registry)`;
`erp/domains.py` only lists the packages. The core never imports a domain: it reads
what they registered here (SQLSTATE problems, template sections, usage counts,
event types, periodic tasks...). The entry points (app factory, CLI, worker,
scheduler) load the list; `registry()` also loads it on first use, so library code
and tests see the same registrations whatever started the process.

A domain registers from inside its `register` function, importing its own modules
there: importing `erp.ledger.services` must not drag in its routes.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy.orm import Session

from erp.secretbox import EncryptedColumn

Validator = Callable[[Any], list[str]]
#: (path, Authorization header) -> the caller, None when the scheme is not its own;
#: raises a 401/403 Problem for a credential of its kind that does not hold.
Authenticator = Callable[[str, str | None], Any]
Applier = Callable[[Session, Any, str], None]

#: The JSON Schema of each outbox event type's `data` (API.md, Outbound events): one
#: file per type, `<type>.json` = `{"description": "...", "schema": {...}}`. A domain
#: registering a type (`Registry.events`) without its file is refused at registration.
EVENT_SCHEMAS = Path(__file__).parent / "event_schemas"
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


@dataclass(frozen=True)
class EventType:
    """A published outbox event type: what `GET /webhooks/event-types` serves."""

    name: str
    description: str
    #: JSON Schema of the event's `data`.
    schema: dict[str, Any]


def load_event_type(name: str) -> EventType:
    """The event type's description and schema from EVENT_SCHEMAS; ValueError naming
    the file to write when it is missing or malformed."""
    if not _EVENT_TYPE.fullmatch(name):
        raise ValueError(f"event type {name!r}: expected dotted lower-case words")
    path = EVENT_SCHEMAS / f"{name}.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"event type {name!r} is registered without a JSON Schema of its data: "
            f"write platform/erp/event_schemas/{name}.json (docs/domains.md, Events)"
        ) from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e})") from None
    if not isinstance(doc, dict) or set(doc) - {"description", "schema"}:
        raise ValueError(f"{path}: only 'description' and 'schema' are read")
    description: Any = doc.get("description")
    schema: Any = doc.get("schema")
    return _checked(EventType(name, description, schema), str(path))


def _checked(event: EventType, where: str = "") -> EventType:
    where = where or f"event type {event.name!r}"
    if not _EVENT_TYPE.fullmatch(event.name):
        raise ValueError(f"event type {event.name!r}: expected dotted lower-case words")
    if not isinstance(event.description, str) or not event.description.strip():
        raise ValueError(f"{where}: needs a non-empty 'description'")
    if not isinstance(event.schema, dict) or event.schema.get("type") != "object":
        raise ValueError(f"{where}: 'schema' must be a JSON Schema of an object")
    return event


@dataclass(frozen=True)
class TemplateSection:
    """A top-level section of provisioning templates (tenants/templates/*.yaml)."""

    name: str
    validate: Validator
    apply: Applier
    order: int = 100


@dataclass(frozen=True)
class PeriodicTask:
    """Work `erp scheduler` enqueues every `every`: an RQ job by dotted name, no args."""

    name: str
    func: str
    every: timedelta
    queue: str = "default"


@dataclass(frozen=True)
class SqlstateProblem:
    """How a SQLSTATE raised by a domain's SQL becomes a problem: its slug and detail.

    `field` names the body field at fault when the error's detail does not (e.g.
    `effective_at` for a closed period); a detail of the form `field: message`
    raised by the SQL wins over it.
    """

    slug: str
    detail: str
    field: str | None = None


@dataclass
class Registry:
    domains: list[str] = field(default_factory=list)
    blueprints: list[Any] = field(default_factory=list)
    page_blueprints: list[Any] = field(default_factory=list)
    sections: dict[str, TemplateSection] = field(default_factory=dict)
    usage: dict[str, str] = field(default_factory=dict)
    sqlstates: dict[str, SqlstateProblem] = field(default_factory=dict)
    event_types: set[str] = field(default_factory=set)
    event_schemas: dict[str, EventType] = field(default_factory=dict)
    cli_groups: list[Any] = field(default_factory=list)
    demo_seeders: list[Callable[[Session], None]] = field(default_factory=list)
    periodic: dict[str, PeriodicTask] = field(default_factory=dict)
    append_only: set[str] = field(default_factory=set)
    definers: dict[str, str] = field(default_factory=dict)
    authenticators: list[Authenticator] = field(default_factory=list)
    encrypted_columns: list[EncryptedColumn] = field(default_factory=list)
    #: (whole-path pattern, handler, method): erp/fastpath.py
    fast_paths: list[tuple[str, Callable[[Any], Any], str]] = field(default_factory=list)

    # -- what a domain's register() calls ------------------------------------------

    def blueprint(self, *blueprints: Any) -> None:
        """flask-smorest Blueprints the app serves."""
        self.blueprints.extend(blueprints)

    def pages(self, *blueprints: Any) -> None:
        """Plain Flask Blueprints of server-rendered pages (not in the OpenAPI document).
        They run through the same request lifecycle; their POSTs may send HTML forms."""
        self.page_blueprints.extend(blueprints)

    def template_section(
        self, name: str, validate: Validator, apply: Applier, *, order: int = 100
    ) -> None:
        if name in self.sections:
            raise ValueError(f"template section {name!r} is registered twice")
        self.sections[name] = TemplateSection(name, validate, apply, order)

    def usage_count(self, name: str, count_sql: str) -> None:
        """A count shown to operators (`GET /ops/v1/tenants/{id}`), run in the tenant."""
        self.usage[name] = count_sql

    def sqlstate(self, state: str, slug: str, detail: str, *, field: str | None = None) -> None:
        """A custom SQLSTATE raised by this domain's SQL (policies/*.sql)."""
        if state in self.sqlstates:
            raise ValueError(f"SQLSTATE {state} is registered twice")
        self.sqlstates[state] = SqlstateProblem(slug, detail, field)

    def events(self, *event_types: str | EventType) -> None:
        """Outbox event types this domain emits (API.md, Outbound events), each with
        the JSON Schema of its `data`: a name, whose schema is the file
        `erp/event_schemas/<type>.json` (`load_event_type`; a type without one is
        refused here, ValueError), or an `EventType` carrying its schema (a domain that
        keeps it in code, e.g. tests' sample domain). Two domains may register the same
        type (one emits it, another streams it)."""
        for item in event_types:
            event = load_event_type(item) if isinstance(item, str) else _checked(item)
            self.event_schemas[event.name] = event
            self.event_types.add(event.name)

    def cli(self, group: Any) -> None:
        """A click group, added to `erp` under its own name."""
        self.cli_groups.append(group)

    def demo(self, seeder: Callable[[Session], None]) -> None:
        """Sample rows for the demo tenant of `make run` (runs in that tenant)."""
        self.demo_seeders.append(seeder)

    def every(self, interval: timedelta, func: str, *, name: str, queue: str = "default") -> None:
        """A periodic job for `erp scheduler`."""
        if name in self.periodic:
            raise ValueError(f"periodic task {name!r} is registered twice")
        self.periodic[name] = PeriodicTask(name, func, interval, queue)

    def fast_path(
        self, pattern: str, handler: Callable[[Any], Any], *, method: str = "POST"
    ) -> None:
        """The usual case of a high-volume route, answered before Flask (erp/fastpath.py):
        `pattern` matches the whole path (named groups for its parameters); `handler`
        takes a `FastRequest` and returns a `FastAnswer`, or None to let the route the
        domain also registers (a blueprint) answer through Flask."""
        self.fast_paths.append((pattern, handler, method))

    def authenticator(self, fn: Authenticator) -> None:
        """Resolves the request's principal before its transaction (DESIGN.md §2)."""
        self.authenticators.append(fn)

    def encrypted(self, table: str, column: str, *, key: str = "id") -> None:
        """A tenant table's text column holding `SecretBox` tokens (erp/secretbox.py):
        `erp secrets rotate` re-encrypts it, and the API and workers refuse to start
        without ENCRYPTION_KEYS once any column is registered."""
        entry = EncryptedColumn(table, column, key)
        if entry in self.encrypted_columns:
            raise ValueError(f"encrypted column {table}.{column} is registered twice")
        self.encrypted_columns.append(entry)

    def catalog(
        self, *, append_only: Iterable[str] = (), definers: Mapping[str, str] | None = None
    ) -> None:
        """What the catalog audit (tests/rls) must know: append-only tables, and the
        SECURITY DEFINER functions allowed (identity -> owning role)."""
        self.append_only.update(append_only)
        self.definers.update(definers or {})


APP_KEY = "erp_registry"
_lock = threading.Lock()
_loaded: Registry | None = None


def load(modules: Iterable[str]) -> Registry:
    """A fresh registry holding what each listed domain package registers."""
    reg = Registry()
    for name in modules:
        module = importlib.import_module(name)
        module.register(reg)
        reg.domains.append(name)
    return reg


def registry() -> Registry:
    """The current app's registry (`create_app(domains=...)`), else the process's: the
    domains listed in `erp.domains`, loaded once."""
    if has_app_context():
        bound: Registry | None = current_app.extensions.get(APP_KEY)
        if bound is not None:
            return bound
    return default_registry()


def default_registry() -> Registry:
    global _loaded
    if _loaded is None:
        with _lock:
            if _loaded is None:
                listed = importlib.import_module("erp.domains")
                _loaded = load(listed.DOMAINS)
    return _loaded
