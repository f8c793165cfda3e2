"""Security events, their review and retention (DESIGN §3.7–3.8).

- events.record(): the one function that stores a security event (web, identity, jobs);
  events.init_app() and events.record_http_error() are wired into the app by leakhub.app;
- keycloak_sync.sync_keycloak_events(): worker job pulling Keycloak login/admin events;
- review.review_security_events(): worker job applying the rules, findings, daily digest;
- retention.apply_retention(): worker job deleting and shortening old data;
- views: /security for administrators; cli: `leakctl security review|sync|retention`.
"""
