"""gunicorn settings shared by the container and the native stack."""
import os

bind = os.environ.get("LEAKHUB_BIND", "0.0.0.0:8000")
wsgi_app = "leakhub.app:create_web_server_app()"


def _cores() -> int:
    """CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# Sized from the cores by default (issue 19): a page is mostly Python under the GIL, so one
# process per core plus one that runs while another waits on the database or a client; four
# threads each cover those waits. LEAKHUB_WEB_WORKERS / LEAKHUB_WEB_THREADS override.
workers = int(os.environ.get("LEAKHUB_WEB_WORKERS") or _cores() + 1)
threads = int(os.environ.get("LEAKHUB_WEB_THREADS") or 4)
worker_class = "gthread"
timeout = 120
graceful_timeout = 20
# Migrations run once, in the master, before workers fork (they also take a DB lock).
preload_app = True
accesslog = None  # the app logs each request as a JSON line with the request id
errorlog = "-"
forwarded_allow_ips = "127.0.0.1,::1"
limit_request_line = 8190
