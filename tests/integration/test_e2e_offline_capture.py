"""Offline capture end to end (issue 18 part 1) in Chromium on a tablet viewport with touch,
through Caddy (HTTPS, the stack's CA pinned: service workers need a trusted origin) and the
real Keycloak login: offline, three leaks with photos are queued in IndexedDB; the page
survives a reload, its tab and the whole browser being closed and reopened offline (service
worker, the browser profile on disk); back online, the
session has meanwhile ended: the page asks to sign in again and keeps the queue; after signing
in each leak exists once with its photos and the audit trail names the auditor. Replaying the
same queue from a second browser context creates nothing; a leak the server refuses stays
queued with its error shown."""
from __future__ import annotations

import io
import time
import uuid

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from support.browser import TABLET, first_sign_in, launch
from support.kc import new_org
from support.stackctl import sql

pytestmark = pytest.mark.e2e

# The queue as plain data (photos as base64), to be replayed in another browser.
DUMP_QUEUE = """() => new Promise((resolve, reject) => {
  const req = indexedDB.open("leakhub-capture", 1);
  req.onerror = () => reject(req.error);
  req.onsuccess = () => {
    const t = req.result.transaction("queue", "readonly");
    const all = t.objectStore("queue").getAll();
    all.onsuccess = async () => {
      const out = [];
      for (const e of all.result) {
        const photos = [];
        for (const p of e.photos) {
          const buf = new Uint8Array(await p.blob.arrayBuffer());
          let bin = ""; buf.forEach((b) => { bin += String.fromCharCode(b); });
          photos.push({client_id: p.client_id, name: p.name, type: p.blob.type, b64: btoa(bin)});
        }
        out.push(Object.assign({}, e, {photos}));
      }
      resolve(out);
    };
  };
})"""
LOAD_QUEUE = """(entries) => new Promise((resolve, reject) => {
  const req = indexedDB.open("leakhub-capture", 1);
  req.onerror = () => reject(req.error);
  req.onsuccess = () => {
    const t = req.result.transaction("queue", "readwrite");
    for (const e of entries) {
      e.photos = e.photos.map((p) => {
        const bin = atob(p.b64); const buf = new Uint8Array(bin.length);
        for (let i = 0; i < bin.length; i++) { buf[i] = bin.charCodeAt(i); }
        return {client_id: p.client_id, name: p.name, blob: new Blob([buf], {type: p.type})};
      });
      t.objectStore("queue").put(e);
    }
    t.oncomplete = () => resolve(entries.length);
  };
})"""


def jpeg(color) -> dict:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, "JPEG")
    return {"name": f"leak-{color[0]}.jpg", "mimeType": "image/jpeg", "buffer": out.getvalue()}


def offline(ctx, on: bool) -> None:
    """The page's requests and the service worker's own (Playwright's offline emulation does
    not reach the worker by itself; its requests are seen with
    PW_EXPERIMENTAL_SERVICE_WORKER_NETWORK_EVENTS)."""
    if on:
        ctx.set_offline(True)
        ctx.route("**/*", _abort_worker)
    else:
        ctx.unroute("**/*", _abort_worker)
        ctx.set_offline(False)


def _abort_worker(route):
    # Requests the worker answers itself never get here; what does is going to the network.
    route.abort("internetdisconnected")


def until(page, js: str, timeout: float = 30) -> None:
    """Poll `js` (a function) until it is truthy. Not wait_for_function: the page's strict
    CSP (no 'unsafe-eval') refuses how Playwright evaluates its predicate."""
    end = time.monotonic() + timeout
    while not page.evaluate(js):
        assert time.monotonic() < end, f"not true within {timeout} s: {js}"
        time.sleep(0.25)


def waiting(page, n: int) -> None:
    expect(page.get_by_test_id("queue-count")).to_have_attribute("data-count", str(n),
                                                                 timeout=30_000)


def capture_rows(stack, slug):
    return sql(stack, "SELECT l.id, l.client_id, l.tag, COUNT(p.id) FROM leak l "
               "JOIN organization o ON o.id = l.organization_id "
               "LEFT JOIN photo p ON p.leak_id = l.id "
               "WHERE o.slug = %s AND l.client_id <> '' GROUP BY l.id, l.client_id, l.tag "
               "ORDER BY l.id", slug)


def test_offline_capture_queue_survives_and_syncs_once(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("PW_EXPERIMENTAL_SERVICE_WORKER_NETWORK_EVENTS", "1")
    slug, email, otp = new_org(stack, "oc")
    stack.leakctl("demo", "seed", "--org", slug, "--leaks", "0", "--sites", "1", "--json")
    url = stack.public_url
    with sync_playwright() as p:
        ctx = launch(p, stack.ca_dir, tmp_path / "tablet", viewport=TABLET, has_touch=True)
        page = ctx.new_page()
        page.goto(f"{url}/login/{slug}?next=/capture")
        first_sign_in(page, slug, email, otp)
        page.wait_for_url(f"{url}/capture")
        expect(page.locator("#capture[data-ready='1']")).to_be_attached(timeout=30_000)
        # The service worker controls the page and keeps the page and its assets.
        until(page, "() => navigator.serviceWorker.controller !== null")
        until(page, "async () => { for (const n of await caches.keys()) {"
                    " if (await (await caches.open(n)).match('/capture')) return true; }"
                    " return false; }")
        assert page.locator("#c-location option").count() > 1

        offline(ctx, True)
        for i, color in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200)]):
            page.select_option("#c-location", index=1 + i)
            page.fill("#c-rate_lpm", f"{i + 1},5")
            page.get_by_test_id("capture-photos").set_input_files(
                [jpeg(color), jpeg((color[0], 100, 100))])
            page.get_by_test_id("capture-save").tap()
            waiting(page, i + 1)
        expect(page.get_by_test_id("queue-count")).to_contain_text("3")
        page.screenshot(path=str(tmp_path / "offline-queue.png"))

        page.reload()                       # offline: served by the service worker
        waiting(page, 3)
        page.close()                        # the tab closed and opened again, still offline
        page = ctx.new_page()
        page.goto(f"{url}/capture")
        waiting(page, 3)
        ctx.close()                         # the whole browser closed and started again
        ctx = launch(p, stack.ca_dir, tmp_path / "tablet", viewport=TABLET, has_touch=True)
        offline(ctx, True)
        page = ctx.new_page()
        page.goto(f"{url}/capture")
        waiting(page, 3)
        queue = page.evaluate(DUMP_QUEUE)
        assert len(queue) == 3 and all(len(e["photos"]) == 2 for e in queue)
        assert capture_rows(stack, slug) == []

        # Meanwhile the session ended on the server: the sync is told 401 and asks to sign
        # in again, keeping the queue.
        sql(stack, "DELETE FROM web_session WHERE organization_id = "
                   "(SELECT id FROM organization WHERE slug = %s)", slug)
        offline(ctx, False)
        page.get_by_test_id("sync-now").tap()
        expect(page.get_by_test_id("capture-signin")).to_be_visible(timeout=30_000)
        waiting(page, 3)
        page.get_by_test_id("capture-signin-link").tap()
        # The browser was restarted: Keycloak's session cookie is gone too, the password is
        # asked for.
        page.wait_for_url(lambda u: "/auth/realms/" in u)
        page.fill("#username", email)
        page.fill("#password", "Leak-hub-2026!")
        page.locator("#kc-login").click()
        page.wait_for_url(f"{url}/capture")
        waiting(page, 0)
        expect(page.get_by_test_id("synced-leak")).to_have_count(3)

        rows = capture_rows(stack, slug)
        assert sorted(r[1] for r in rows) == sorted(e["client_id"] for e in queue)
        assert [r[3] for r in rows] == [2, 2, 2]           # each once, with its two photos
        user_id = sql(stack, 'SELECT u.id FROM "user" u JOIN organization o ON '
                             "o.id = u.organization_id WHERE o.slug = %s AND u.email = %s",
                      slug, email)[0][0]
        leak_ids = [r[0] for r in rows]
        photo_ids = [r[0] for r in sql(stack, "SELECT id FROM photo WHERE leak_id = ANY(%s)",
                                       leak_ids)]
        for kind, ids in (("leak", leak_ids), ("photo", photo_ids)):
            actors = sql(stack, "SELECT DISTINCT actor_kind, actor_id FROM audit_entry "
                                "WHERE entity_type = %s AND action = 'create' "
                                "AND entity_id = ANY(%s)", kind, ids)
            assert actors == [("user", user_id)], (kind, actors)
        ctx.close()

        # The same queue replayed from another browser: nothing new.
        ctx2 = launch(p, stack.ca_dir, tmp_path / "second", viewport=TABLET, has_touch=True)
        page2 = ctx2.new_page()
        page2.goto(f"{url}/login/{slug}?next=/capture")
        page2.fill("#username", email)
        page2.fill("#password", "Leak-hub-2026!")
        page2.locator("#kc-login").click()
        page2.wait_for_url(f"{url}/capture")
        expect(page2.locator("#capture[data-ready='1']")).to_be_attached(timeout=30_000)
        # ... with one leak the server refuses (its location is gone): shown with its error,
        # kept; the others are found, not made again.
        bad = dict(queue[0], client_id=str(uuid.uuid4()), photos=[],
                   fields=dict(queue[0]["fields"], location=999_999_999), created=0)
        assert page2.evaluate(LOAD_QUEUE, [*queue, bad]) == 4
        page2.get_by_test_id("sync-now").tap()
        waiting(page2, 1)
        expect(page2.get_by_test_id("queued-error")).to_contain_text("location")
        assert capture_rows(stack, slug) == rows
        ctx2.close()
