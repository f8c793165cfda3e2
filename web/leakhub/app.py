"""Flask application factory. gunicorn: `leakhub.app:create_web_server_app()`.

The one place that wires the features into the app (the top layer: nothing imports it)."""
from __future__ import annotations

import logging
import sys

from flask import Flask, request
from flask_babel import Babel
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from .api.problems import http_problem
from .api.views import bp as api_bp
from .api.views import ingest_bp as devices_api_bp
from .audit.activity import TEMPLATE_GLOBALS as audit_activity_globals
from .audit.views import bp as audit_bp
from .backups.views import bp as backups_bp
from .capture.views import bp as capture_bp
from .core import crypto, migrations, templating, web
from .core import logging as app_logging
from .core.config import Config, get_config, set_config
from .core.db import close_all_connections, database, init_database
from .core.i18n import select_locale
from .core.secrets import read_secret
from .dashboard.views import bp as dashboard_bp
from .departments.views import bp as departments_bp
from .devices.views import pages as devices_bp
from .exports.views import bp as exports_bp
from .home.views import bp as home_bp
from .identity.directory_views import bp as directory_bp
from .identity.login import login_manager
from .identity.sessions import DBSessionInterface
from .identity.views import bp as identity_bp
from .imports.views import bp as imports_bp
from .leaks.views import bp as leaks_bp
from .locations.views import bp as locations_bp
from .ops.views import bp as ops_bp
from .photos.views import bp as photos_bp
from .plans.views import bp as plans_bp
from .privacy.views import bp as privacy_bp
from .reports.views import bp as reports_bp
from .security import events as security_events
from .security.views import bp as security_bp
from .surveys.views import bp as surveys_bp
from .users.views import bp as users_bp

# Every feature's blueprint; a new feature adds one entry here.
BLUEPRINTS = (home_bp, identity_bp, locations_bp, surveys_bp, leaks_bp, audit_bp, photos_bp,
              dashboard_bp, exports_bp, imports_bp, reports_bp, devices_api_bp, api_bp,
              users_bp, devices_bp, backups_bp, ops_bp, security_bp, directory_bp, privacy_bp,
              capture_bp, plans_bp, departments_bp)


def _locale():
    """The user's language, else the organization's, else the browser's (core.i18n)."""
    if getattr(current_user, "is_authenticated", False):
        return select_locale(current_user.user.language, current_user.organization.language,
                             request.accept_languages)
    return select_locale(None, None, request.accept_languages)


def _timezone():
    """Babel's dates and times in the signed-in organization's time zone."""
    org = getattr(current_user, "organization", None) if getattr(
        current_user, "is_authenticated", False) else None
    return getattr(org, "timezone", None) or "UTC"


def create_web_server_app() -> Flask:
    """gunicorn's entry point (web/gunicorn.conf.py): database connections pooled across
    requests. Without its data key it refuses to start with one clear line (exit 3: gunicorn
    stops instead of restarting workers that cannot boot)."""
    try:
        return create_app(pool_connections=True)
    except crypto.DataKeyError as exc:
        logging.getLogger("leakhub.web").critical("cannot start: %s", exc)
        sys.stderr.write(f"leakhub web: cannot start: {exc}\n")
        raise SystemExit(3) from None


def create_app(config: Config | None = None, *, migrate: bool = True,
               pool_connections: bool = False) -> Flask:
    config = config or get_config()
    set_config(config)
    app_logging.configure("web", config.log_level)
    crypto.check_ready(config)      # the data key opens the key ring, or no start
    app = Flask(__name__)
    app.config.update(
        LEAKHUB=config,
        SECRET_KEY=read_secret(config.secrets_dir, "session-key"),
        MAX_CONTENT_LENGTH=config.max_upload_mb * 1024 * 1024,
        TESTING=config.testing,
    )
    # Caddy is the one proxy in front: trust exactly one hop of X-Forwarded-*.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_port=1)
    init_database(config, pooled=pool_connections)
    if migrate:
        for mig in migrations.migrate(config.data_dir, log=lambda m: None):
            logging.getLogger("leakhub.migrations").info("applied %04d %s", mig.version, mig.name)

    app.session_interface = DBSessionInterface(config)
    login_manager.init_app(app)
    Babel(app, locale_selector=_locale, timezone_selector=_timezone)
    web.init_app(app)
    templating.register_filters(app)
    app.jinja_env.globals.update(audit_activity_globals)

    @app.before_request
    def _connect():
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc):
        if not database.is_closed():
            database.close()

    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    security_events.init_app(app)  # the request hook that notices expired sessions
    web.on_http_error(app, security_events.record_http_error)  # 403/429 -> security events
    web.render_errors_under(app, "/api/", http_problem)  # problem documents, not pages
    close_all_connections()
    return app
