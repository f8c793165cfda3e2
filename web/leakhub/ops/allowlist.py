"""The admin pages' IP allow-list, the app-side half of LEAKHUB_ADMIN_ALLOW.

Caddy already refuses Keycloak's admin console and master realm outside LEAKHUB_ADMIN_ALLOW
(and everything outside LEAKHUB_APP_ALLOW). Leakhub's own administration pages are refused
here, against request.remote_addr as ProxyFix sets it from Caddy's X-Forwarded-For (Caddy
replaces a client's own value), so the check holds behind the proxy and directly on the web
port alike. A refusal answers 403 and records a security event `ip_denied`.

An empty LEAKHUB_ADMIN_ALLOW means no app-side restriction (the compose default: the
customer's administrators sit anywhere in the company network); the native stack passes
Caddy's default (127.0.0.1/32 ::1/128), where every client is local anyway.
"""
from __future__ import annotations

import ipaddress
import logging

from flask_babel import gettext as _

from ..security.events import record

log = logging.getLogger("leakhub.ops")

# Path prefixes of administration pages: a prefix matches itself, "/prefix/..." and
# "/prefix.ext" (e.g. /audit.csv).
ADMIN_PREFIXES = ("/admin", "/users", "/security", "/audit", "/settings")


def is_admin_path(path: str) -> bool:
    path = path or "/"
    return any(path == p or path.startswith(p + "/") or path.startswith(p + ".")
               for p in ADMIN_PREFIXES)


def ip_allowed(ip: str | None, networks) -> bool:
    if not networks:
        return True
    try:
        addr = ipaddress.ip_address((ip or "").strip())
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks if net.version == addr.version)


def check_request():
    """before_request: None to go on, or the 403 response."""
    from flask import current_app, render_template, request

    config = current_app.config["LEAKHUB"]
    if not config.admin_allow or not is_admin_path(request.path):
        return None
    ip = request.remote_addr
    if ip_allowed(ip, config.admin_allow):
        return None
    org, user = _signed_in()
    record("ip_denied", organization=org, user=user, ip=ip,
           details={"method": request.method, "path": request.path[:200],
                    "endpoint": request.endpoint, "allow": "LEAKHUB_ADMIN_ALLOW"})
    log.warning("admin page refused outside LEAKHUB_ADMIN_ALLOW",
                extra={"method": request.method, "path": request.path[:200], "status": 403})
    description = _("Administration pages can only be opened from the networks the "
                    "operator allowed (LEAKHUB_ADMIN_ALLOW).")
    return render_template("error.html", code=403, title="Forbidden",
                           description=description), 403


def _signed_in():
    try:
        from flask_login import current_user

        if current_user and current_user.is_authenticated:
            return current_user.organization, current_user.user
    except Exception:
        pass
    return None, None
