"""PDF benchmark: a survey with N leaks (default 500) of which some have photos — report data
(queries + figures) and PDF rendering. Target: < 20 s for 500 leaks.

    .venv/bin/python bench/bench_pdf.py [--leaks 500] [--photos 100] [--out report.pdf]
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import random

from _common import environment, system_actor, timed


def photo(rng) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (1600, 1200), (rng.randint(0, 255), 90, 120))
    d = ImageDraw.Draw(img)
    for _ in range(30):
        x, y = rng.randint(0, 1500), rng.randint(0, 1100)
        d.ellipse((x, y, x + 80, y + 80), fill=(255, 255, rng.randint(0, 255)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leaks", type=int, default=500)
    ap.add_argument("--photos", type=int, default=100, help="leaks with a photo")
    ap.add_argument("--out", default="", help="also write the PDF here")
    args = ap.parse_args()
    with environment() as (_app, org):
        from leakhub.imports import service as imports
        from leakhub.leaks.models import Leak
        from leakhub.photos import service as photos
        from leakhub.reports import pdf, service
        from leakhub.surveys import service as surveys

        actor = system_actor(org, "bench pdf")
        rng = random.Random(7)
        survey = surveys.create_survey(actor, name="Frühjahrsbegehung 2025",
                                       period_start=dt.date(2025, 3, 1),
                                       period_end=dt.date(2025, 3, 14),
                                       auditor_company="Druckluft-Audit GmbH",
                                       device="SONAPHONE, SN 204711", coverage_percent=90)
        comps = ["Kupplung", "Schlauch", "Wartungseinheit", "Verschraubung", "Ventil"]
        lines = ["Nr.;Standort;Datum;Leckrate l/min;Bauteil;Bemerkung;Begehung;Status"]
        for i in range(1, args.leaks + 1):
            lines.append(f"{i};WERK/H{rng.randint(1, 4)}/L{rng.randint(1, 10)};"
                         f"{rng.randint(1, 14):02d}.03.2025;"
                         + f"{rng.uniform(1, 90):.1f}".replace(".", ",")
                         + f";{rng.choice(comps)};Leckage an Linie "
                         f"{rng.randint(1, 10)}, gut hörbar;{survey.name};"
                         f"{rng.choice(['offen', 'offen', 'repariert'])}")
        res = imports.run_import(actor, "\n".join(lines).encode(), "s.csv",
                                 options=imports.Options(create_locations=True))
        assert res.committed, [str(e) for e in res.errors[:3]]
        t = dt.datetime.now()
        for leak in list(Leak.select().where(Leak.organization == org).limit(args.photos)):
            photos.add_photos(actor, leak, [("foto.jpg", photo(rng))])
        print(f"set-up: {args.leaks} leaks, {args.photos} photos "
              f"({(dt.datetime.now() - t).total_seconds():.1f} s for the photos)")
        t_data, data = timed(service.survey_report, actor, survey)
        t_pdf, body = timed(pdf.render, data)
        print(f"report data (queries + figures): {t_data:6.2f} s")
        print(f"PDF rendering:                   {t_pdf:6.2f} s  ({len(body) / 1e6:.2f} MB, "
              f"{body.count(b'/Type /Page') - body.count(b'/Type /Pages')} pages)")
        print(f"total:                           {t_data + t_pdf:6.2f} s  target < 20 s")
        if args.out:
            with open(args.out, "wb") as fh:
                fh.write(body)


if __name__ == "__main__":
    main()
