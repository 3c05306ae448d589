"""The ERP platform. `create_app` is the only place the app is assembled."""

from __future__ import annotations

from typing import Any

from erp.config import Settings, SettingsError
from erp.http import ErpFlask
from erp.registry import Registry

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None, *, domains: Registry | None = None, **config: Any
) -> ErpFlask:
    """The app, serving what `domains` registered (default: those of `erp.domains`)."""
    from erp import docs_assets, fastpath, health, inputs, openapi, ratelimit
    from erp.errors import register_error_handlers
    from erp.extensions import Api, db, queue
    from erp.http import check_no_async_views, install_request_hooks
    from erp.logs import configure_logging
    from erp.registry import APP_KEY, default_registry

    settings = settings or Settings.from_env()
    settings.require_secret_key()  # cursors signed here must verify in every other process
    if errors := settings.sign_in_errors():  # settings built in code skip from_env's check
        raise SettingsError("\n".join(errors))
    configure_logging(settings.log_level, settings.log_json)
    domains = domains or default_registry()
    if domains.encrypted_columns:  # secrets stored here must open in every other process
        settings.require_encryption_keys()
    app = ErpFlask("erp")
    app.config.update(
        ERP_SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        PROBLEM_BASE_URI=settings.problem_base_uri,
        API_TITLE="ERP platform",
        API_VERSION="v1",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="v1/openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="/api/docs/assets/",
        JSON_SORT_KEYS=False,
    )
    app.config.update(config)
    db.init_app(app, settings)
    queue.init_app(app, settings.redis_url, settings.queue_prefix)
    # The document completes itself (erp/openapi.py): security, scopes, idempotency,
    # problem responses, and fields that say more than their type.
    api = Api(app, spec_kwargs=openapi.install(app))
    openapi.finish(api)
    app.extensions["erp_api"] = api
    register_error_handlers(app)
    install_request_hooks(app)
    ratelimit.init_app(app, settings)  # after the hooks: limits need the principal
    # Input checks last (erp/inputs.py): an anonymous caller's body is never parsed,
    # and a flood of bad input is counted against the caller's limits first.
    app.before_request(inputs.check_request)
    app.register_blueprint(health.blp)
    app.register_blueprint(docs_assets.blp)
    app.extensions[APP_KEY] = domains
    for blueprint in domains.blueprints:
        api.register_blueprint(blueprint)
    for blueprint in domains.page_blueprints:
        app.register_blueprint(blueprint)
    check_no_async_views(app)
    fastpath.install(app, (fastpath.compile_path(*p) for p in domains.fast_paths))
    return app
