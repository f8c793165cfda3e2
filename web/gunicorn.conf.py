"""gunicorn settings shared by the container and the native stack."""
import os

bind = os.environ.get("LEAKHUB_BIND", "0.0.0.0:8000")
wsgi_app = "leakhub.app:create_web_server_app()"
workers = int(os.environ.get("LEAKHUB_WEB_WORKERS", "2"))
threads = int(os.environ.get("LEAKHUB_WEB_THREADS", "4"))
worker_class = "gthread"
timeout = 120
graceful_timeout = 20
# Migrations run once, in the master, before workers fork (they also take a DB lock).
preload_app = True
accesslog = None  # the app logs each request as a JSON line with the request id
errorlog = "-"
forwarded_allow_ips = "127.0.0.1,::1"
limit_request_line = 8190
