"""Security events, their review and retention (DESIGN §3.7–3.8).

- events.record(): the one function that stores a security event (web, identity, jobs);
- keycloak_sync.sync_keycloak_events(): worker job pulling Keycloak login/admin events;
- review.review_security_events(): worker job applying the rules, findings, daily digest;
- retention.apply_retention(): worker job deleting and shortening old data;
- views: /security for administrators; cli: `leakctl security review|sync|retention`.
"""

from ..core import web
from . import events
from .views import bp


def init_app(app):
    """Blueprint, the request hook that notices expired sessions, and the listener that
    records refusals (403, 429) as security events."""
    events.init_app(app)
    web.on_http_error(app, events.record_http_error)
    app.register_blueprint(bp)
