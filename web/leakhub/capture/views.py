"""The offline capture page (`/capture`), its service worker (`/sw.js`, at the root so that
its scope covers the page) and the web app manifest (`/manifest.webmanifest`).

The service worker is a JavaScript file rendered from a template only to list the exact
(versioned) URLs of the page's assets; there is no inline script anywhere, so the strict
Content-Security-Policy (script-src 'self', default-src 'self' covering worker-src and
manifest-src) stays as it is."""
from __future__ import annotations

import hashlib
import json

from flask import Blueprint, Response, render_template, url_for
from flask_babel import gettext as _

from .. import authz
from ..core.pages import member_required
from ..identity.login import current_actor
from ..leaks import service as leaks
from ..leaks.models import COMPONENTS

bp = Blueprint("capture", __name__)

# The assets the capture page needs offline (static file names).
ASSETS = ("css/leakhub.css", "js/capture.js", "icons/icon-192.png", "icons/icon-512.png")
CACHE_PREFIX = "leakhub-capture-"


@bp.get("/capture")
@member_required
def index():
    actor = current_actor()
    authz.require(actor, "create")
    return render_template(
        "capture/index.html",
        component_options=[(c, leaks.COMPONENT_LABELS[c]) for c in COMPONENTS],
        priority_options=list(leaks.PRIORITY_LABELS.items()))


@bp.get("/sw.js")
def service_worker():
    assets = [url_for("static", filename=name) for name in ASSETS]
    urls = {"page": url_for("capture.index"), "data": url_for("api.capture_data"),
            "assets": assets}
    # A new cache name whenever an asset changes (their URLs carry the content hash).
    version = hashlib.sha256(json.dumps(urls, sort_keys=True).encode()).hexdigest()[:12]
    body = render_template("capture/sw.js", urls=urls, cache=CACHE_PREFIX + version,
                           prefix=CACHE_PREFIX)
    return Response(body, mimetype="text/javascript",
                    headers={"Cache-Control": "no-cache"})


@bp.get("/manifest.webmanifest")
def manifest():
    data = {
        "name": "Leakhub",
        "short_name": "Leakhub",
        "description": _("Record compressed-air leaks, also offline."),
        "start_url": url_for("capture.index"),
        "scope": "/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#1f5f99",
        "icons": [
            {"src": url_for("static", filename="icons/icon-192.png"), "sizes": "192x192",
             "type": "image/png"},
            {"src": url_for("static", filename="icons/icon-512.png"), "sizes": "512x512",
             "type": "image/png", "purpose": "any maskable"},
        ],
    }
    return Response(json.dumps(data, ensure_ascii=False), mimetype="application/manifest+json",
                    headers={"Cache-Control": "no-cache"})
