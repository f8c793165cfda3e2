// Offline capture: leaks recorded on this page wait in IndexedDB (with their photos) until
// they are synced through /api/v1 with the signed-in session (CSRF token in a header).
// Every leak and photo carries a UUID made here, so a repeated sync never makes a copy.
(function () {
  "use strict";
  var root = document.getElementById("capture");
  if (!root) { return; }
  var T = root.dataset;
  var form = document.getElementById("capture-form");
  var DB_NAME = "leakhub-capture";
  var syncing = false;
  var data = null;
  var signedOut = false;
  var done = [];

  // ------------------------------------------------------------ IndexedDB
  function openDb() {
    return new Promise(function (resolve, reject) {
      var req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = function () {
        var db = req.result;
        if (!db.objectStoreNames.contains("queue")) {
          db.createObjectStore("queue", {keyPath: "client_id"});
        }
        if (!db.objectStoreNames.contains("meta")) { db.createObjectStore("meta"); }
      };
      req.onsuccess = function () { resolve(req.result); };
      req.onerror = function () { reject(req.error); };
    });
  }
  var dbPromise = openDb();

  function tx(store, mode, fn) {
    return dbPromise.then(function (db) {
      return new Promise(function (resolve, reject) {
        var t = db.transaction(store, mode);
        var result;
        var req = fn(t.objectStore(store));
        if (req) { req.onsuccess = function () { result = req.result; }; }
        t.oncomplete = function () { resolve(result); };
        t.onerror = function () { reject(t.error); };
        t.onabort = function () { reject(t.error); };
      });
    });
  }
  function putEntry(entry) { return tx("queue", "readwrite", function (s) { return s.put(entry); }); }
  function deleteEntry(id) { return tx("queue", "readwrite", function (s) { return s.delete(id); }); }
  function allEntries() {
    return tx("queue", "readonly", function (s) { return s.getAll(); }).then(function (rows) {
      rows = rows || [];
      rows.sort(function (a, b) { return a.created < b.created ? -1 : 1; });
      return rows;
    });
  }
  function getMeta(key) { return tx("meta", "readonly", function (s) { return s.get(key); }); }
  function setMeta(key, value) { return tx("meta", "readwrite", function (s) { return s.put(value, key); }); }

  function uuid() {
    if (window.crypto && crypto.randomUUID) { return crypto.randomUUID(); }
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // ------------------------------------------------------------ display
  function setStatus(text) { document.getElementById("capture-status").textContent = text; }
  function showSignIn(show) {
    signedOut = show;
    var box = document.getElementById("capture-signin");
    box.hidden = !show;
    box.querySelector("span").textContent = T.tSignin;
    box.querySelector("a").href = T.login;
  }
  function labelOf(list, id) {
    var found = (list || []).filter(function (x) { return String(x.id) === String(id); })[0];
    return found ? found.label.trim() : String(id);
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function render() {
    return allEntries().then(function (entries) {
      var mine = entries.filter(function (e) { return !data || e.org === data.organization; });
      var n = mine.length;
      var count = document.getElementById("queue-count");
      count.textContent = n === 0 ? T.tNoneWaiting
        : (n === 1 ? T.tWaitingOne : T.tWaitingOther).replace("__N__", String(n));
      count.dataset.count = String(n);
      var list = document.getElementById("queue");
      list.textContent = "";
      mine.forEach(function (e) {
        var li = el("li", {"data-testid": "queued-leak", "data-client-id": e.client_id,
                           "data-state": e.state});
        var text = labelOf(data && data.locations, e.fields.location) + " · " +
          e.fields.rate_lpm + " l/min · " + T.tPhotos.replace("__N__", String(e.photos.length));
        li.appendChild(el("span", {}, text + " "));
        if (e.state === "error" || e.state === "conflict") {
          li.appendChild(el("strong", {"class": "field-error", "data-testid": "queued-error"},
            (e.state === "conflict" ? T.tConflict : T.tError) + ": " + e.message));
          var rm = el("button", {"type": "button", "class": "link"}, T.tRemove);
          rm.addEventListener("click", function () {
            if (window.confirm(T.tConfirmRemove)) { deleteEntry(e.client_id).then(render); }
          });
          li.appendChild(document.createTextNode(" "));
          li.appendChild(rm);
        }
        list.appendChild(li);
      });
      done.forEach(function (tag) {
        list.appendChild(el("li", {"data-testid": "synced-leak", "class": "muted"},
                            T.tSynced.replace("__TAG__", tag)));
      });
      var next = document.getElementById("next-tag");
      next.textContent = data ? T.tNextTag.replace("__N__", String(data.next_tag + n)) : T.tNoData;
      if (!syncing) { setStatus(navigator.onLine ? T.tOnline : T.tOffline); }
    });
  }

  // ------------------------------------------------------------ the lists
  function fillSelect(select, items) {
    var keep = select.value;
    while (select.options.length > 1) { select.remove(1); }
    items.forEach(function (item) {
      select.appendChild(el("option", {"value": String(item.id)}, item.label));
    });
    if (keep) { select.value = keep; }
  }
  function useData(d) {
    data = d;
    fillSelect(form.elements.location, d.locations);
    fillSelect(form.elements.survey, d.surveys);
  }
  // Fresh from the server when possible (then kept on the device), else the kept copy.
  function loadData() {
    return fetch(T.apiData, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (resp) {
        if (resp.status === 401) { showSignIn(true); return null; }
        if (!resp.ok) { return null; }
        return resp.json().then(function (d) {
          showSignIn(false);
          var kept = Object.assign({}, d);
          delete kept.csrf_token;
          return setMeta("data", kept).then(function () { useData(d); return d; });
        });
      })
      .catch(function () { return null; })
      .then(function (fresh) {
        if (fresh) { return fresh; }
        return getMeta("data").then(function (kept) { if (kept && !data) { useData(kept); } return null; });
      });
  }

  // ------------------------------------------------------------ recording
  function nowLocal() {
    var d = new Date();
    d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
    return d.toISOString().slice(0, 16);
  }
  function fieldError(name, text) {
    var p = form.querySelector("[data-error-for=" + name + "]");
    if (p) { p.hidden = !text; p.textContent = text || ""; }
  }
  // "12,5" or "12.5" → 12.5; null when it is not a number.
  function number(text) {
    var t = text.trim().replace(",", ".");
    var v = Number(t);
    return t !== "" && isFinite(v) ? v : null;
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var f = form.elements;
    var bad = false;
    ["location", "rate_lpm"].forEach(function (name) {
      var missing = !f[name].value.trim();
      fieldError(name, missing ? T.tRequired : "");
      bad = bad || missing;
    });
    ["rate_lpm", "pressure_bar"].forEach(function (name) {
      if (f[name].value.trim() && number(f[name].value) === null) {
        fieldError(name, T.tNumber);
        bad = true;
      }
    });
    if (bad) { return; }
    var fields = {location: parseInt(f.location.value, 10),
                  survey: f.survey.value ? parseInt(f.survey.value, 10) : null,
                  found_at: new Date(f.found_at.value || nowLocal()).toISOString(),
                  method: "device", rate_lpm: number(f.rate_lpm.value),
                  component: f.component.value, priority: parseInt(f.priority.value, 10),
                  description: f.description.value};
    if (data && data.user) { fields.found_by_user = data.user.id; }
    if (f.pressure_bar.value.trim()) { fields.pressure_bar = number(f.pressure_bar.value); }
    ["location", "rate_lpm", "pressure_bar"].forEach(function (name) { fieldError(name, ""); });
    var photos = Array.prototype.map.call(f.photos.files, function (file) {
      return {client_id: uuid(), name: file.name, blob: file};
    });
    var entry = {client_id: uuid(), org: data ? data.organization : "", created: Date.now(),
                 fields: fields, photos: photos, leak_id: null, tag: null, state: "waiting",
                 message: ""};
    putEntry(entry).then(function () {
      // The next finding of the same walk: location and survey stay chosen.
      f.rate_lpm.value = ""; f.pressure_bar.value = ""; f.description.value = "";
      f.photos.value = ""; f.found_at.value = nowLocal();
      setStatus(T.tSaved);
      return render();
    }).then(function () { if (navigator.onLine) { sync(); } });
  });

  // ------------------------------------------------------------ sync
  function problemText(body) {
    if (!body) { return ""; }
    var parts = [];
    if (body.errors) {
      Object.keys(body.errors).forEach(function (k) { parts.push((k ? k + ": " : "") + body.errors[k]); });
    }
    if (!parts.length) { parts.push(body.detail || body.title || ""); }
    return parts.join("; ");
  }
  function failed(entry, resp) {
    return resp.json().catch(function () { return null; }).then(function (body) {
      entry.state = resp.status === 409 ? "conflict" : "error";
      entry.message = problemText(body) || String(resp.status);
      return putEntry(entry);
    });
  }
  function SignedOut() {}

  function syncEntry(entry, csrf) {
    var headers = {"X-CSRF-Token": csrf, "Accept": "application/json"};
    var step = Promise.resolve();
    if (!entry.leak_id) {
      step = fetch(T.apiLeaks, {method: "POST", credentials: "same-origin",
        headers: Object.assign({"Content-Type": "application/json"}, headers),
        body: JSON.stringify(Object.assign({client_id: entry.client_id}, entry.fields))})
        .then(function (resp) {
          if (resp.status === 401) { throw new SignedOut(); }
          if (!resp.ok) { return failed(entry, resp).then(function () { return false; }); }
          return resp.json().then(function (leak) {
            entry.leak_id = leak.id; entry.tag = leak.tag; entry.state = "waiting"; entry.message = "";
            return putEntry(entry).then(function () { return true; });
          });
        });
    } else {
      step = Promise.resolve(true);
    }
    return step.then(function (ok) {
      if (!ok) { return false; }
      var url = T.apiLeaks + "/" + entry.leak_id + "/photos";
      var next = function () {
        if (!entry.photos.length) {
          done.push(entry.tag);
          return deleteEntry(entry.client_id).then(function () { return true; });
        }
        var photo = entry.photos[0];
        var body = new FormData();
        body.append("client_id", photo.client_id);
        body.append("photos", photo.blob, photo.name || "photo.jpg");
        return fetch(url, {method: "POST", credentials: "same-origin", headers: headers, body: body})
          .then(function (resp) {
            if (resp.status === 401) { throw new SignedOut(); }
            if (!resp.ok) { return failed(entry, resp).then(function () { return false; }); }
            entry.photos.shift();
            return putEntry(entry).then(next);
          });
      };
      return next();
    });
  }

  function sync() {
    if (syncing) { return Promise.resolve(); }
    syncing = true;
    setStatus(T.tSyncing);
    return fetch(T.apiData, {credentials: "same-origin", cache: "no-store",
                             headers: {"Accept": "application/json", "X-Leakhub-Sync": "1"}})
      .then(function (resp) {
        if (resp.status === 401) { throw new SignedOut(); }
        if (!resp.ok) { throw new Error(String(resp.status)); }
        return resp.json();
      })
      .then(function (fresh) {
        if (!fresh.csrf_token) { throw new Error("offline copy"); }
        showSignIn(false);
        useData(fresh);
        return allEntries().then(function (entries) {
          var mine = entries.filter(function (e) { return e.org === fresh.organization || !e.org; });
          return mine.reduce(function (p, e) {
            return p.then(function () {
              if (!e.org) { e.org = fresh.organization; }
              return syncEntry(e, fresh.csrf_token);
            });
          }, Promise.resolve());
        });
      })
      .catch(function (err) {
        if (err instanceof SignedOut) { showSignIn(true); }
      })
      .then(function () { syncing = false; return render(); });
  }

  document.getElementById("sync-now").addEventListener("click", function () { sync(); });
  window.addEventListener("online", function () { sync(); });
  window.addEventListener("offline", function () { render(); });

  form.elements.found_at.value = nowLocal();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register(T.sw, {scope: "/"}).catch(function () { /* no offline */ });
  }
  if (navigator.storage && navigator.storage.persist) { navigator.storage.persist(); }
  loadData().then(render).then(function () {
    root.dataset.ready = "1";
    if (navigator.onLine && !signedOut) { return sync(); }
  });
})();
