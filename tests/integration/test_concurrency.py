"""Concurrent use through Caddy on both databases (SQLite, the embedded default, and
PostgreSQL): ≥ 16 clients at once for a bounded time, mixing browser form posts (session +
CSRF), API writes with a user's token and with a device's token, `leakctl import` in its own
process, and reads — while the worker runs all of its jobs (restarted at the start, so each
runs once then). Afterwards: no response ≥ 500, every write accepted, the leaks counted equal
the successful writes, and no job run failed.
"""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.forms import Browser, make_world
from support.kc import new_org, sign_in
from support.stackctl import _stack_py, sql
from support.tokens import Person

pytestmark = pytest.mark.integration

DURATION_S = 25
FORM_CLIENTS, API_CLIENTS, DEVICE_CLIENTS, READERS = 4, 4, 2, 6   # + 1 importer = 17


def restart_worker(stack) -> None:
    for verb in ("down", "up"):
        proc = _stack_py(verb, "--only", "worker", "--home", str(stack.home), timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def device_token(stack, slug: str) -> str:
    out = stack.leakctl("device", "add", "--org", slug, "--name", "Detector 1",
                        "--model", "LD 500", "--serial", "SN-4711", "--json")
    device = json.loads(out.stdout)
    http = stack.requests_session()
    resp = http.post(f"{stack.public_url}/auth/realms/{slug}/protocol/openid-connect/token",
                     data={"grant_type": "client_credentials", "client_id": device["client_id"],
                           "client_secret": device["client_secret"]})
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.created = 0
        self.failures: list[str] = []

    def record(self, what: str, status: int, created: int = 0, detail: str = "") -> None:
        with self.lock:
            self.statuses[(what, status)] += 1
            self.created += created
            if status >= 500 or (what.startswith("write") and not created):
                self.failures.append(f"{what} → {status}: {detail[:300]}")


def _until(deadline: float):
    while time.monotonic() < deadline:
        yield


@pytest.fixture(params=["sqlite", "postgres"])
def any_stack(request):
    return request.getfixturevalue("sqlite_stack" if request.param == "sqlite" else "stack")


def test_concurrent_clients_mixing_forms_api_device_import_and_reads(any_stack, tmp_path):
    stack = any_stack
    slug, email, otp = new_org(stack, prefix="conc")
    browsers = []
    password = otp
    for _ in range(FORM_CLIENTS):
        http = stack.requests_session()
        resp, password = sign_in(http, stack, slug, email, password)
        assert resp.status_code == 200, resp.text[:500]
        browsers.append(Browser(stack, http))
    world = make_world(browsers[0])
    area = world["area"]
    admin = Person(slug, email, password)
    user_token = admin.token(stack)
    dev_token = device_token(stack, slug)
    before = sql(stack, "SELECT count(*) FROM leak")[0][0]
    started_at = sql(stack, "SELECT CURRENT_TIMESTAMP")[0][0]

    tally = Tally()
    deadline = time.monotonic() + DURATION_S

    def form_client(browser: Browser):
        for _ in _until(deadline):
            form = browser.form("/leaks/new")
            form.set("location", area).set("survey", world["survey"])
            form.set("found_at", "2024-03-05T10:15").set("rate_lpm", "12,5")
            form.set("description", "Kupplung zischt")
            resp = browser.submit(form)
            ok = resp.status_code in (302, 303) and "/leaks/" in resp.headers.get("Location", "")
            tally.record("write form", resp.status_code, int(ok), resp.text)

    def api_client():
        http = stack.requests_session()
        for _ in _until(deadline):
            resp = http.post(f"{stack.public_url}/api/v1/leaks",
                             headers={"Authorization": f"Bearer {user_token}"},
                             json={"location": area, "found_at": "2024-03-06T09:00:00Z",
                                   "rate_lpm": 30, "description": "Schlauch rissig"})
            tally.record("write api", resp.status_code, int(resp.status_code == 201), resp.text)

    def device_client(n: int):
        http = stack.requests_session()
        for _i in _until(deadline):
            where = {"location": "BER / H1 / A1"} if n % 2 else {"location_code": "A1"}
            finding = {"id": f"dev{n}-{uuid.uuid4().hex}", **where,
                       "found_at": "2024-03-07T11:00", "rate_lpm": 4.5,
                       "description": "Magnetventil undicht"}
            resp = http.post(f"{stack.public_url}/api/v1/ingest/findings",
                             headers={"Authorization": f"Bearer {dev_token}"},
                             json={"findings": [finding]})
            created = len(resp.json()["created"]) if resp.status_code in (200, 201) else 0
            tally.record("write device", resp.status_code, created, resp.text)

    def importer():
        n = 0
        for _ in _until(deadline):
            n += 1
            rows = "".join(f"IMP-{n}-{i},BER/H1/A1,2024-03-08,{i + 1},Import {n}/{i}\r\n"
                           for i in range(10))
            path = tmp_path / f"import-{n}.csv"
            path.write_text("Tag number,Location path,Found at,Leak rate l/min,Description\r\n"
                            + rows, encoding="utf-8")
            proc = stack.leakctl("import", "leaks", "--org", slug, str(path), "--json",
                                 check=False, timeout=120)
            ok = proc.returncode == 0
            tally.record("write import", 200 if ok else 599, 10 if ok else 0,
                         proc.stderr or proc.stdout)

    def reader(n: int):
        http = stack.requests_session() if n % 2 else browsers[n % len(browsers)].http
        paths = ["/leaks", "/dashboard", "/leaks?status=open&sort=-rate", "/"]
        for i in _until(deadline):
            if n % 2:
                resp = http.get(f"{stack.public_url}/api/v1/leaks?per_page=50",
                                headers={"Authorization": f"Bearer {user_token}"})
            else:
                resp = http.get(f"{stack.public_url}{paths[i % len(paths)] if i else paths[0]}")
            tally.record("read", resp.status_code)

    restart_worker(stack)   # every job runs once at start: during the load
    with ThreadPoolExecutor(FORM_CLIENTS + API_CLIENTS + DEVICE_CLIENTS + READERS + 1) as pool:
        futures = [pool.submit(form_client, b) for b in browsers]
        futures += [pool.submit(api_client) for _ in range(API_CLIENTS)]
        futures += [pool.submit(device_client, n) for n in range(DEVICE_CLIENTS)]
        futures += [pool.submit(reader, n) for n in range(READERS)]
        futures.append(pool.submit(importer))
        for f in futures:
            f.result()
    summary = dict(sorted((f"{k[0]} {k[1]}", v) for k, v in tally.statuses.items()))
    print(f"\n{stack.db}: {summary}")

    assert not tally.failures, tally.failures[:10]
    assert all(status < 500 for (_, status) in tally.statuses), summary
    writes = {what for (what, _) in tally.statuses if what.startswith("write")}
    assert writes == {"write form", "write api", "write device", "write import"}, summary
    after = sql(stack, "SELECT count(*) FROM leak")[0][0]
    assert after - before == tally.created, (after - before, tally.created, summary)

    # The worker's jobs ran during the load (the restart runs each once) and none failed.
    time.sleep(2)
    runs = sql(stack, "SELECT job, status, message FROM job_run WHERE started_at >= "
                        f"'{started_at}' ORDER BY started_at")
    assert {job for job, _, _ in runs} >= {"heartbeat", "retention", "security-review"}, runs
    assert [r for r in runs if r[1] == "failed"] == [], runs
    tags = sql(stack, "SELECT tag, count(*) FROM leak GROUP BY organization_id, tag "
                        "HAVING count(*) > 1")
    assert tags == [], tags
