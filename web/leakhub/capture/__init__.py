"""Offline capture (issue 18 item 1): the installable capture page, its service worker and
web app manifest. Leaks recorded offline wait in the browser (IndexedDB) and sync through
/api/v1 (api/capture.py, api/leaks.py, api/photos.py), idempotent by client id."""
