// Leakhub's service worker (rendered by capture.views.service_worker; no inline script).
// Keeps the offline capture page, its assets and its data (surveys, locations, next tag)
// so that the page opens without a network. Everything else goes to the network untouched:
// no other page and no API answer is ever stored.
"use strict";
const CACHE = {{ cache|tojson }};
const PREFIX = {{ prefix|tojson }};
const URLS = {{ urls|tojson }};

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(URLS.assets);
    // The page and its data need the session: kept when signed in, else on the next visit.
    for (const url of [URLS.page, URLS.data]) {
      try {
        const resp = await fetch(url, {credentials: "same-origin", redirect: "manual"});
        if (resp.ok && resp.type === "basic") { await cache.put(url, resp); }
      } catch (e) { /* offline: the page stores it when next opened */ }
    }
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith(PREFIX) && name !== CACHE) { await caches.delete(name); }
    }
    await self.clients.claim();
  })());
});

function pathOf(request) {
  const url = new URL(request.url);
  return url.origin === self.location.origin ? url.pathname : null;
}

// Network first (fresh data, a signed-out session shows the sign-in), the stored copy when
// the network fails. Only a good same-origin answer replaces the stored copy.
async function networkFirst(request, key) {
  const cache = await caches.open(CACHE);
  try {
    const resp = await fetch(request);
    if (resp.ok && resp.type === "basic" && !resp.redirected) {
      await cache.put(key, resp.clone());
    }
    return resp;
  } catch (err) {
    const stored = await cache.match(key);
    if (stored) { return stored; }
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  // Not: writes, and the sync's own reads (cache "no-store": fresh or nothing).
  if (request.method !== "GET" || request.cache === "no-store") { return; }
  const path = pathOf(request);
  if (path === null) { return; }
  if (path === URLS.page && request.mode === "navigate") {
    event.respondWith(networkFirst(request, URLS.page));
  } else if (path === URLS.data) {
    event.respondWith(networkFirst(request, URLS.data));
  } else if (URLS.assets.some((a) => new URL(a, self.location.origin).pathname === path)) {
    event.respondWith((async () => {
      const cache = await caches.open(CACHE);
      return (await cache.match(request, {ignoreSearch: true})) || fetch(request);
    })());
  }
});
