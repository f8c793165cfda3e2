"""Small helpers shared by the HTML views of the feature folders: the "member" guard,
the conflict page, QR codes. The display filters live in core.templating."""
from __future__ import annotations

import functools

from flask import render_template
from flask_login import current_user, login_required
from markupsafe import Markup, escape


def member_required(view):
    """Signed in and given a role; users waiting for access see the waiting page."""
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if current_user.is_pending:
            return render_template("identity/waiting.html"), 403
        return view(*args, **kwargs)
    return login_required(wrapper)


def qr_svg(data: str, *, css_class: str = "qr", label: str = "") -> Markup:
    """The QR code of `data` as inline SVG (no style attributes: CSP style-src 'self')."""
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    qr.add_data(data)
    qr.make(fit=True)
    matrix = qr.get_matrix()
    n = len(matrix)
    parts = []
    for y, row in enumerate(matrix):
        x = 0
        while x < n:
            if row[x]:
                start = x
                while x < n and row[x]:
                    x += 1
                parts.append(f"M{start},{y}h{x - start}v1h-{x - start}z")
            else:
                x += 1
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {n} {n}" class="{escape(css_class)}"'
        f' role="img" aria-label="{escape(label or data)}" shape-rendering="crispEdges">'
        f'<rect width="{n}" height="{n}" fill="#fff"/>'
        f'<path d="{"".join(parts)}" fill="#000"/></svg>')


def conflict_rows(fields: list[tuple[str, str]], mine: dict, current, fmt=None) -> list[dict]:
    """Rows for the conflict page: (label, what I sent, what is saved now) per field,
    flagged where they differ."""
    fmt = fmt or (lambda name, value: "" if value is None else str(value))
    rows = []
    for name, label in fields:
        if isinstance(current, dict):
            theirs = current.get(name)
        else:
            theirs = getattr(current, name, None) if current is not None else None
        a, b = fmt(name, mine.get(name)), fmt(name, theirs)
        rows.append({"name": name, "label": label, "mine": a, "theirs": b, "differs": a != b})
    return rows
