"""Test data for photos, imports, exports, reports and the dashboard, for unit and integration
tests (the unit tests' `tree` fixture is make_tree)."""
from __future__ import annotations

import base64
import datetime as dt
import io
import re
import zlib
from decimal import Decimal as D

from PIL import Image

from leakhub.dashboard.counts import differences
from leakhub.leaks import service as leaks
from leakhub.locations import service as loc

BASE = "https://localhost"


def make_tree(actor):
    site = loc.create_location(actor, kind="site", code="BER", name="Werk Berlin")
    hall = loc.create_location(actor, kind="building", code="H1", name="Halle 1", parent=site)
    area = loc.create_location(actor, kind="area", code="A1", name="Montage", parent=hall)
    site2 = loc.create_location(actor, kind="site", code="MUC", name="Werk München")
    return {"site": site, "hall": hall, "area": area, "site2": site2}


def new_leak(actor, location, **kw):
    values = dict(location=location.id, found_at=dt.datetime(2024, 3, 1, 9), rate_lpm=D("20"))
    values.update(kw)
    return leaks.create_leak(actor, **values)


def jpeg_with_exif_gps(size=(64, 48), orientation=None) -> bytes:
    img = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x0131] = "Firmware 1.0"  # Software
    if orientation:
        exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (52.0, 31.0, 12.0)
    gps[3] = "E"
    gps[4] = (13.0, 24.0, 36.0)
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, comment=b"secret comment")
    return out.getvalue()


def png_bytes(size=(20, 10)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (0, 100, 0, 128)).save(out, "PNG")
    return out.getvalue()


def pdf_text(data: bytes) -> bytes:
    """Raw content of the PDF with every Flate stream inflated (pypdf is not in the lock)."""
    out = [data]
    for m in re.finditer(rb"stream\r?\n(.*?)\s*endstream", data, re.S):
        raw = m.group(1).strip()
        if raw.endswith(b"~>"):  # reportlab: ASCII85 around Flate
            try:
                raw = base64.a85decode(raw[:-2])
            except ValueError:
                continue
        try:
            out.append(zlib.decompress(raw))
        except zlib.error:
            pass
    return b"\n".join(out)


def leak_daily_mismatches() -> dict:
    """Rows of the per-day counts (LeakDaily, LeakRepairedDaily) that differ from counting the
    leak table again in Python: {key: (kept, counted)}. Empty when the triggers kept them."""
    return differences()
