"""Leak report as PDF (reportlab platypus): summary, repair status, settings used, leak table,
photo appendix; header and footer with organization, page X of Y and generation date.
Tables are cut into chunks so 500 leaks render in a few seconds."""
from __future__ import annotations

import io
from xml.sax.saxutils import escape

from babel.numbers import format_currency, format_decimal
from flask_babel import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen import canvas as pdfcanvas
from reportlab.platypus import (
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from ..photos.storage import photo_storage
from ..plans.service import SHAPE_LABELS, STATUS_STYLE, plan_storage
from . import service

CHUNK = 60
NAVY = colors.HexColor("#10243e")
LINE = colors.HexColor("#d9dee5")
ZEBRA = colors.HexColor("#f3f5f8")


class _Fmt:
    def __init__(self, language: str, currency: str):
        self.locale = "de_DE" if (language or "").startswith("de") else "en_GB"
        self.currency = currency
        self.date_fmt = "%d.%m.%Y" if self.locale.startswith("de") else "%Y-%m-%d"

    def num(self, value, digits=0):
        if value is None:
            return ""
        fmt = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(value, fmt, locale=self.locale)

    def money(self, value, digits=0):
        if value is None:
            return ""
        if not self.currency:
            return self.num(value, digits)
        fmt = "#,##0" + ("." + "0" * digits if digits else "") + " ¤"
        if not self.locale.startswith("de"):
            fmt = "¤#,##0" + ("." + "0" * digits if digits else "")
        return format_currency(value, self.currency, format=fmt, locale=self.locale,
                               currency_digits=False)

    def date(self, value):
        return value.strftime(self.date_fmt) if value else ""


def _numbered_canvas(org_name: str, title: str, footer_left: str):
    class NumberedCanvas(pdfcanvas.Canvas):
        """Defers pages so the footer can say "page X of Y"."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._saved = []

        def showPage(self):
            self._saved.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._saved)
            for state in self._saved:
                self.__dict__.update(state)
                self._decorate(total)
                super().showPage()
            super().save()

        def _decorate(self, total):
            w, h = A4
            self.saveState()
            self.setFont("Helvetica-Bold", 9)
            self.setFillColor(NAVY)
            self.drawString(15 * mm, h - 11 * mm, org_name[:90])
            self.setFont("Helvetica", 9)
            self.drawRightString(w - 15 * mm, h - 11 * mm, title[:90])
            self.setStrokeColor(LINE)
            self.line(15 * mm, h - 13 * mm, w - 15 * mm, h - 13 * mm)
            self.line(15 * mm, 12 * mm, w - 15 * mm, 12 * mm)
            self.setFillColor(colors.HexColor("#5b6675"))
            self.setFont("Helvetica", 8)
            self.drawString(15 * mm, 8 * mm, footer_left)
            self.drawRightString(w - 15 * mm, 8 * mm,
                                 _("Page %(n)d of %(total)d", n=self._pageNumber, total=total))
            self.restoreState()
    return NumberedCanvas


def render(data: service.ReportData, *, compress: bool = True) -> bytes:
    org = data.organization
    fmt = _Fmt(service.report_language(org), data.currency)
    styles = getSampleStyleSheet()
    base = ParagraphStyle("base", parent=styles["Normal"], fontName="Helvetica", fontSize=9,
                          leading=11)
    small = ParagraphStyle("small", parent=base, fontSize=7.5, leading=9)
    h1 = ParagraphStyle("h1", parent=styles["Heading1"], fontName="Helvetica-Bold", fontSize=16,
                        textColor=NAVY, spaceAfter=4)
    h2 = ParagraphStyle("h2", parent=styles["Heading2"], fontName="Helvetica-Bold", fontSize=12,
                        textColor=NAVY, spaceBefore=10, spaceAfter=4)

    def p(text, style=base):
        return Paragraph(escape(str(text or "")), style)

    story = [Paragraph(escape(data.title), h1)]
    facts = [[p(k), p(v)] for k, v in data.facts]
    facts.append([p(_("Generated")), p(data.generated_at.strftime(fmt.date_fmt + " %H:%M"))])
    story.append(_table(facts, [35 * mm, 145 * mm], header=False))

    # Summary figures.
    story.append(Paragraph(escape(_("Summary")), h2))
    o, f = data.open, data.fixed
    head = ["", _("Leaks"), "l/min", _("kWh/a"), _("Cost/a"), _("t CO2/a")]
    rows = [head,
            [_("Open leaks"), str(o.count), fmt.num(o.rate_lpm, 1), fmt.num(o.kwh_year),
             fmt.money(o.cost_year), fmt.num(o.co2_kg_year / 1000, 2)],
            [_("Repaired: potential savings"), str(f.count), fmt.num(f.rate_lpm, 1),
             fmt.num(f.kwh_year), fmt.money(f.cost_year), fmt.num(f.co2_kg_year / 1000, 2)],
            [_("Repaired: expected savings"), "", "", fmt.num(f.expected_kwh_year),
             fmt.money(f.expected_cost_year), fmt.num(f.expected_co2_kg_year / 1000, 2)]]
    story.append(_table(rows, [62 * mm, 18 * mm, 22 * mm, 26 * mm, 30 * mm, 22 * mm],
                        numeric_from=1))
    story.append(Spacer(1, 3 * mm))
    story.append(p(_("Expected savings apply the compressor control factor (DOE MEASUR): "
                     "a repaired leak saves energy at the meter only as far as the compressors "
                     "throttle."), small))

    # Repair status.
    story.append(Paragraph(escape(_("Repair status")), h2))
    st_rows = [[_("Status"), _("Leaks")]] + [
        [service.status_label(s), str(data.by_status[s])] for s in service.STATUS_ORDER
        if data.by_status.get(s)]
    story.append(_table(st_rows, [60 * mm, 25 * mm], numeric_from=1))

    # Settings used.
    story.append(Paragraph(escape(_("Energy settings used")), h2))
    set_rows = [[_("Applies to"), _("Valid from"), _("Valid to"), _("Price/kWh"),
                 _("kW per m³/min"), _("h/a"), _("kg CO2/kWh"), _("Control factor")]]
    for s in data.settings:
        v = s.params
        price = "" if v.get("price_per_kwh") is None else (
            f"{fmt.num(v['price_per_kwh'], 4)} {v.get('currency') or ''}".strip())
        if v.get("price_per_m3") is not None:
            price += f" ({fmt.num(v['price_per_m3'], 4)}/m³)"
        set_rows.append([s.scope, fmt.date(s.valid_from) or "—", fmt.date(s.valid_to) or "—",
                         price, fmt.num(v.get("specific_power"), 2) if v.get("specific_power")
                         is not None else "", str(v.get("operating_hours") or ""),
                         fmt.num(v.get("co2_factor"), 3) if v.get("co2_factor") is not None
                         else "", fmt.num(v.get("control_factor"), 2)
                         if v.get("control_factor") is not None else ""])
    story.append(_table([[p(c, small) for c in r] for r in set_rows],
                        [34 * mm, 20 * mm, 20 * mm, 30 * mm, 20 * mm, 14 * mm, 20 * mm,
                         20 * mm]))
    story.append(Spacer(1, 2 * mm))
    story.append(p(_("Energy = leak rate (m³/min) × specific power × operating hours; cost = "
                     "energy × price (or air volume × price per m³); CO2 = energy × emission "
                     "factor. Each leak uses the settings valid at its site on the day it was "
                     "found; empty site values are inherited from the organization."), small))

    # Leak table.
    story.append(Paragraph(escape(_("Leaks (%(n)d)", n=len(data.rows))), h2))
    if data.truncated:
        story.append(p(_("Only the first %(n)d leaks are listed.", n=service.MAX_LEAKS)))
    header = [_("Tag"), _("Location"), _("Component"), "l/min", _("Cost/a"), _("Status"),
              _("Repaired")]
    widths = [16 * mm, 62 * mm, 28 * mm, 16 * mm, 20 * mm, 22 * mm, 16 * mm]
    body = []
    for r in data.rows:
        lk = r.leak
        loc = f"{r.location_path} · {r.location_name}"
        desc = (lk.description or "").strip()
        cell = [p(loc, small)]
        if desc:
            cell = Paragraph(escape(loc) + "<br/><font color='#5b6675'>" +
                             escape(desc[:160]) + "</font>", small)
        body.append([lk.tag, cell, service.component_label(lk.component),
                     fmt.num(lk.rate_lpm, 1), fmt.money(r.figures.cost_year),
                     service.status_label(lk.status), fmt.date(lk.repaired_at)])
    if not body:
        story.append(p(_("No leaks.")))
    for i in range(0, len(body), CHUNK):
        story.append(_table([header] + body[i:i + CHUNK], widths, numeric_from=3,
                            numeric_to=4, font_size=7.5))

    # Floor plans with their pins (colour and shape by status, tags beside, a legend).
    if data.plans:
        story.append(Paragraph(escape(_("Floor plans")), h2))
        store = plan_storage(org)
        for pp in data.plans:
            try:
                raw = store.read(pp.plan.sha256)
            except (FileNotFoundError, ValueError):
                continue
            title = Paragraph(escape(f"{pp.location.label} ({len(pp.pins)})"), base)
            story.append(KeepTogether([title, Spacer(1, 1 * mm),
                                       PlanFlowable(raw, pp, 180 * mm, 200 * mm)]))
        legend = [[MarkerFlowable(colour, shape),
                   p(f"{service.status_label(status)} ({SHAPE_LABELS[shape]})", small)]
                  for status, (colour, shape) in STATUS_STYLE.items()]
        grid = [legend[i:i + 4] for i in range(0, len(legend), 4)]
        grid[-1] += [["", ""]] * (4 - len(grid[-1]))
        rows = [[c for pair in r for c in pair] for r in grid]
        lt = Table(rows, colWidths=[6 * mm, 39 * mm] * 4, hAlign="LEFT")
        lt.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
                                ("LEFTPADDING", (0, 0), (-1, -1), 1)]))
        story.append(Spacer(1, 2 * mm))
        story.append(lt)

    # Photo appendix: a grid of thumbnails, four per row, each captioned with its leak.
    with_photos = [r for r in data.rows if data.photos.get(r.leak.id)]
    if with_photos:
        store = photo_storage(org)
        story.append(Paragraph(escape(_("Photos")), h2))
        cells = []
        for r in with_photos:
            for ph in data.photos[r.leak.id][:service.MAX_PHOTOS_PER_LEAK]:
                try:
                    raw = store.read(ph.thumb_sha256)
                except (FileNotFoundError, ValueError):
                    continue
                scale = min(40 * mm / max(ph.width, 1), 30 * mm / max(ph.height, 1))
                caption = Paragraph(
                    "<b>" + escape(r.leak.tag) + "</b> · " + escape(r.location_path) + "<br/>" +
                    escape(service.component_label(r.leak.component)), small)
                cells.append([caption, Image(io.BytesIO(raw), width=ph.width * scale,
                                             height=ph.height * scale)])
        per_row = 4
        grid_rows = [cells[i:i + per_row] for i in range(0, len(cells), per_row)]
        if grid_rows:
            grid_rows[-1] += [""] * (per_row - len(grid_rows[-1]))
            for i in range(0, len(grid_rows), 6):
                grid = Table(grid_rows[i:i + 6], colWidths=[45 * mm] * per_row, hAlign="LEFT")
                grid.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                                          ("LEFTPADDING", (0, 0), (-1, -1), 0),
                                          ("BOTTOMPADDING", (0, 0), (-1, -1), 6)]))
                story.append(grid)

    buf = io.BytesIO()
    footer = _("Generated %(when)s by Leakhub",
               when=data.generated_at.strftime(fmt.date_fmt + " %H:%M"))
    doc = SimpleDocTemplate(buf, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                            topMargin=18 * mm, bottomMargin=17 * mm, title=data.title,
                            author=org.name, creator="Leakhub", pageCompression=1 if compress
                            else 0, invariant=0)
    doc.build(story, canvasmaker=_numbered_canvas(org.name, data.title, footer))
    return buf.getvalue()


def draw_marker(canv, shape: str, x: float, y: float, r: float, colour: str) -> None:
    """A pin at (x, y) in PDF coordinates (y up): filled, white edge."""
    canv.saveState()
    canv.setFillColor(colors.HexColor(colour))
    canv.setStrokeColor(colors.white)
    canv.setLineWidth(r / 4)
    if shape == "square":
        canv.rect(x - r, y - r, 2 * r, 2 * r, stroke=1, fill=1)
    elif shape in ("diamond", "triangle"):
        pts = ([(x, y + r * 1.3), (x + r * 1.3, y), (x, y - r * 1.3), (x - r * 1.3, y)]
               if shape == "diamond" else
               [(x, y + r * 1.2), (x + r * 1.1, y - r * 0.9), (x - r * 1.1, y - r * 0.9)])
        path = canv.beginPath()
        path.moveTo(*pts[0])
        for pt in pts[1:]:
            path.lineTo(*pt)
        path.close()
        canv.drawPath(path, stroke=1, fill=1)
    else:
        canv.circle(x, y, r, stroke=1, fill=1)
    canv.restoreState()


class MarkerFlowable(Flowable):
    def __init__(self, colour: str, shape: str, size: float = 3.2 * mm):
        super().__init__()
        self.colour, self.shape, self.size = colour, shape, size
        self.width = self.height = size

    def draw(self):
        draw_marker(self.canv, self.shape, self.size / 2, self.size / 2, self.size / 3,
                    self.colour)


class PlanFlowable(Flowable):
    """A floor plan image scaled into (max_w, max_h) with its pins and their tags."""

    def __init__(self, raw: bytes, plan_pins, max_w: float, max_h: float):
        super().__init__()
        self.reader = ImageReader(io.BytesIO(raw))
        self.pp = plan_pins
        plan = plan_pins.plan
        scale = min(max_w / max(plan.width, 1), max_h / max(plan.height, 1))
        self.width, self.height = plan.width * scale, plan.height * scale

    def draw(self):
        c = self.canv
        c.drawImage(self.reader, 0, 0, width=self.width, height=self.height)
        c.setStrokeColor(LINE)
        c.rect(0, 0, self.width, self.height, stroke=1, fill=0)
        r = 2 * mm
        for pin in self.pp.pins:
            x, y = pin.x * self.width, (1 - pin.y) * self.height
            draw_marker(c, pin.shape, x, y, r, pin.colour)
            c.saveState()
            c.setFont("Helvetica-Bold", 7)
            c.setFillColor(NAVY)
            c.drawString(x + r * 1.5, y - 1, pin.leak.tag[:16])
            c.restoreState()


def _table(rows, widths, *, header=True, numeric_from=None, numeric_to=None, font_size=8.5):
    t = Table(rows, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    style = [
        ("FONT", (0, 0), (-1, -1), "Helvetica", font_size),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, LINE),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header:
        style += [("FONT", (0, 0), (-1, 0), "Helvetica-Bold", font_size),
                  ("BACKGROUND", (0, 0), (-1, 0), ZEBRA),
                  ("LINEBELOW", (0, 0), (-1, 0), 0.8, NAVY)]
    if numeric_from is not None:
        end = numeric_to if numeric_to is not None else -1
        style.append(("ALIGN", (numeric_from, 0), (end, -1), "RIGHT"))
    t.setStyle(TableStyle(style))
    return t
