"""Encryption at rest benchmark: photo upload and download throughput with and without the data
key (AES-256-GCM per file, core/crypto.py).

Three levels, each once with encryption on and once off (LEAKHUB_DATA_KEY_FILE=off), each mode
in its own process and throw-away home:
  storage   FileStorage.put / read of N files of SIZE MiB (incompressible bytes)
  upload    photos.service.add_photos of a 1600x1200 JPEG (Pillow re-encode + thumbnail + put)
  download  photos.views.send_photo (read + decrypt + Flask response body)

    .venv/bin/python bench/bench_crypto.py [--files 100] [--size 2] [--photos 30]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import time

import _common
from _common import environment, seed, system_actor
from PIL import Image, ImageDraw

from leakhub.core import crypto
from leakhub.core.config import get_config
from leakhub.leaks.models import Leak
from leakhub.photos import service as photos
from leakhub.photos.storage import photo_storage
from leakhub.photos.views import send_photo


def jpeg(rng) -> bytes:
    img = Image.new("RGB", (1600, 1200), (rng.randint(0, 255), 90, 120))
    d = ImageDraw.Draw(img)
    for _ in range(60):
        x, y = rng.randint(0, 1500), rng.randint(0, 1100)
        d.ellipse((x, y, x + 80, y + 80), fill=(255, rng.randint(0, 255), rng.randint(0, 255)))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def child(args) -> dict:
    rng = random.Random(7)
    res = {}
    with environment() as (app, org):
        config = get_config()
        res["encrypted"] = crypto.enabled(config)
        store = photo_storage(org, config)
        blobs = [os.urandom(int(args.size * 2**20)) for _ in range(args.files)]
        mib = args.size * args.files
        t, c = time.perf_counter(), time.process_time()
        keys = [store.put(b) for b in blobs]
        res["storage put MiB/s"] = mib / (time.perf_counter() - t)
        res["storage put MiB/CPU-s"] = mib / (time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        for k in keys:
            store.read(k)
        res["storage read MiB/s"] = mib / (time.perf_counter() - t)
        res["storage read MiB/CPU-s"] = mib / (time.process_time() - c)
        on_disk = store._path(keys[0]).read_bytes()
        res["sealed on disk"] = on_disk[:8] == crypto.MAGIC

        actor = system_actor(org)
        seed(org, leaks=1, sites=1)
        leak = Leak.select().where(Leak.organization == org).first()
        images = [jpeg(rng) for _ in range(args.photos)]
        t, c = time.perf_counter(), time.process_time()
        made = []
        for i, data in enumerate(images):
            made += photos.add_photos(actor, leak, [(f"p{i}.jpg", data)])
        dt = time.perf_counter() - t
        res["upload photos/s"] = len(images) / dt
        res["upload CPU ms/photo"] = (time.process_time() - c) * 1000 / len(images)
        stored_mib = sum(p.size for p in made) / 2**20
        t, c = time.perf_counter(), time.process_time()
        for _ in range(5):
            for p in made:
                resp = send_photo(p, p.sha256, p.content_type, "x.jpg")
                resp.direct_passthrough = False
                resp.get_data()
        dt = time.perf_counter() - t
        res["download photos/s"] = 5 * len(made) / dt
        res["download MiB/s"] = 5 * stored_mib / dt
        res["download CPU ms/photo"] = (time.process_time() - c) * 1000 / (5 * len(made))
        res["photo MiB (stored)"] = stored_mib / len(made)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=100)
    ap.add_argument("--size", type=float, default=2.0, help="MiB per storage file")
    ap.add_argument("--photos", type=int, default=30)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    rows = {}
    for mode in ("on", "off"):
        env = dict(os.environ)
        if mode == "off":
            env["LEAKHUB_DATA_KEY_FILE"] = "off"
        else:
            env.pop("LEAKHUB_DATA_KEY_FILE", None)
        out = subprocess.run([sys.executable, __file__, "--child", "--files", str(args.files),
                              "--size", str(args.size), "--photos", str(args.photos)],
                             env=env, capture_output=True, text=True, check=True)
        rows[mode] = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1])
    load = os.getloadavg()
    print(f"encryption at rest: {args.files} x {args.size:g} MiB storage files, {args.photos} "
          f"photos (1600x1200 JPEG); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'':24}{'encrypted':>12}{'plaintext':>12}{'ratio':>8}")
    for k in rows["on"]:
        a, b = rows["on"][k], rows["off"][k]
        if isinstance(a, bool):
            print(f"{k:24}{a!s:>12}{b!s:>12}")
        else:
            print(f"{k:24}{a:12.2f}{b:12.2f}{a / b:8.2f}")


if __name__ == "__main__":
    assert _common.ROOT     # imported first: puts web/ on sys.path for `leakhub`
    main()
