"""Prometheus metrics, served by the worker on an internal-only address.

One scrape target: the worker serves `/metrics` on LEAKHUB_METRICS_BIND (native default
127.0.0.1:9464; compose 0.0.0.0:9464 on the internal network, not published, and Caddy
answers 404 for /metrics). It reports

- the appliance, read from the database at scrape time: job runs by job and status and the
  time of each job's last run, the newest verified backup's age, security events by kind
  (sign-in failures, lock-outs, denials, ...), organizations, leaks by status;
- the web's requests: gunicorn's worker processes count requests and their latency with
  prometheus_client in multiprocess mode into PROMETHEUS_MULTIPROC_DIR (set for web only),
  a directory the worker reads too (LEAKHUB_WEB_METRICS_DIR, the same directory: a shared
  volume in compose). The web wipes it when it starts, so counters restart with the web.

Everything here is optional at run time: without prometheus_client, or with
LEAKHUB_METRICS_BIND=off, nothing is served and the web counts nothing.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

from ..backups.inventory import newest_verified
from ..core.db import database, utcnow
from ..jobs.models import JobRun
from ..leaks.models import Leak
from ..orgs.models import Organization
from ..security.models import SecurityEvent

log = logging.getLogger("leakhub.metrics")

try:  # the web and the worker run without it (no metrics) rather than not at all
    import prometheus_client  # noqa: F401

    AVAILABLE = True
except ImportError:   # pragma: no cover - depends on the installation
    AVAILABLE = False

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_requests = None
_latency = None


# --------------------------------------------------------------------------- web side

def web_metrics_enabled() -> bool:
    return AVAILABLE and bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


def reset_multiproc_dir() -> None:
    """At web start (gunicorn's master, before workers fork): files of the previous run go."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.iterdir():
        if entry.is_file() and entry.suffix == ".db":
            entry.unlink(missing_ok=True)
        elif entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _web_collectors():
    global _requests, _latency
    if _requests is None:
        from prometheus_client import Counter, Histogram

        _requests = Counter("leakhub_http_requests", "HTTP requests answered by the web app",
                            ["method", "endpoint", "status"])
        _latency = Histogram("leakhub_http_request_duration_seconds",
                             "Time the web app took to answer", ["method", "endpoint"],
                             buckets=LATENCY_BUCKETS)
    return _requests, _latency


def observe_request(method: str, endpoint: str | None, status: int, seconds: float) -> None:
    """Count one request. `endpoint` is Flask's endpoint name (bounded), never the path."""
    if not web_metrics_enabled():
        return
    try:
        requests_total, latency = _web_collectors()
        endpoint = endpoint or "unmatched"
        method = method if method in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
                                      "OPTIONS") else "other"
        requests_total.labels(method, endpoint, str(status)).inc()
        latency.labels(method, endpoint).observe(seconds)
    except Exception as exc:  # metrics must never break a request
        log.warning("could not count a request: %s", type(exc).__name__)


# --------------------------------------------------------------------------- worker side

def _seconds(delta) -> float:
    return delta.total_seconds()


class AppCollector:
    """Gauges read from the database at scrape time (a short-lived connection per scrape)."""

    def __init__(self, config=None):
        self.config = config

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("leakhub_database_up", "1 when the metrics could read the "
                               "database")
        families = []
        started = time.perf_counter()
        try:
            database.connect(reuse_if_open=True)
            families = list(self._families())
            up.add_metric([], 1)
        except Exception as exc:
            log.warning("metrics: database not readable: %s", type(exc).__name__)
            up.add_metric([], 0)
        finally:
            if not database.is_closed():
                database.close()
        yield up
        yield from families
        took = GaugeMetricFamily("leakhub_metrics_collect_seconds",
                                 "Time to read the appliance metrics")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _families(self):
        import peewee as pw
        from prometheus_client.core import GaugeMetricFamily

        now = utcnow()
        runs = GaugeMetricFamily("leakhub_job_runs", "Recorded worker job runs (as retained) "
                                 "by job and status", labels=["job", "status"])
        for job, status, n in (JobRun.select(JobRun.job, JobRun.status, pw.fn.COUNT(JobRun.id))
                               .group_by(JobRun.job, JobRun.status).tuples()):
            runs.add_metric([job, status], n)
        yield runs

        last = GaugeMetricFamily("leakhub_job_last_run_age_seconds", "Seconds since each job's "
                                 "last run started, by the status it ended with",
                                 labels=["job", "status"])
        for job, status, at in (JobRun.select(JobRun.job, JobRun.status,
                                              pw.fn.MAX(JobRun.started_at))
                                .group_by(JobRun.job, JobRun.status).tuples()):
            if at is not None:
                at = at if not isinstance(at, str) else _parse_time(at)
                last.add_metric([job, status], max(0.0, _seconds(now - at)))
        yield last

        backup = GaugeMetricFamily("leakhub_backup_newest_verified_age_seconds",
                                   "Age of the newest verified backup (absent: none yet)")
        newest = _newest_verified_backup()
        if newest is not None:
            backup.add_metric([], max(0.0, _seconds(now - newest)))
        yield backup

        events = GaugeMetricFamily("leakhub_security_events", "Security events (as retained) "
                                   "by kind and source, e.g. kind=\"sign_in_failed\"",
                                   labels=["kind", "source"])
        for kind, source, n in (SecurityEvent.select(SecurityEvent.kind, SecurityEvent.source,
                                                     pw.fn.COUNT(SecurityEvent.id))
                                .group_by(SecurityEvent.kind, SecurityEvent.source).tuples()):
            events.add_metric([kind, source], n)
        yield events

        orgs = GaugeMetricFamily("leakhub_organizations", "Organizations on this appliance")
        orgs.add_metric([], Organization.select().count())
        yield orgs

        leaks = GaugeMetricFamily("leakhub_leaks", "Leaks by status (all organizations)",
                                  labels=["status"])
        for status, n in (Leak.select(Leak.status, pw.fn.COUNT(Leak.id))
                          .group_by(Leak.status).tuples()):
            leaks.add_metric([status], n)
        yield leaks


def _parse_time(value: str):
    import datetime as dt

    return dt.datetime.fromisoformat(value)


def _newest_verified_backup():
    row = newest_verified()
    return row.created_at if row is not None else None


def registry(config, web_dir: str | Path | None):
    """A registry with the appliance gauges and, when there is one, the web's request data."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    reg = CollectorRegistry(auto_describe=False)
    reg.register(AppCollector(config))
    if web_dir and Path(web_dir).is_dir():
        MultiProcessCollector(reg, path=str(web_dir))
    return reg


def parse_bind(value: str) -> tuple[str, int] | None:
    """'127.0.0.1:9464', '0.0.0.0:9464', '[::1]:9464' → (host, port); 'off' → None."""
    value = (value or "").strip()
    if value.lower() in ("", "off", "none", "0"):
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"LEAKHUB_METRICS_BIND must be HOST:PORT or off, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


class MetricsServer:
    """`/metrics` (and nothing else: 404) on its own thread in the worker process."""

    def __init__(self, config, bind: tuple[str, int], web_dir=None):
        self.config = config
        self.bind = bind
        self.web_dir = web_dir
        self.httpd = None
        self.thread = None

    def start(self) -> None:
        import socket
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                try:
                    body = generate_latest(registry(server.config, server.web_dir))
                    status = 200
                except Exception as exc:
                    log.error("metrics: %s", type(exc).__name__)
                    body, status = b"metrics unavailable\n", 500
                self.send_response(status)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST if status == 200
                                 else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt, *args):   # scrapes are not worth a log line each
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            address_family = socket.AF_INET6 if ":" in self.bind[0] else socket.AF_INET

        self.httpd = Server(self.bind, Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics",
                                       daemon=True)
        self.thread.start()
        log.info("metrics on http://%s:%d/metrics", *self.bind[:2])

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()


def start_worker_metrics(config) -> MetricsServer | None:
    """Called by the worker at start; never fatal (a busy port is logged)."""
    if not AVAILABLE:
        log.warning("prometheus_client is not installed: no /metrics")
        return None
    try:
        bind = parse_bind(config.metrics_bind)
    except ValueError as exc:
        log.error("%s", exc)
        return None
    if bind is None:
        return None
    server = MetricsServer(config, bind, config.web_metrics_dir)
    try:
        server.start()
    except OSError as exc:
        log.error("metrics: cannot listen on %s:%d: %s", bind[0], bind[1], exc)
        return None
    return server
