"""JSON-lines logging with the request id that Caddy, web and worker share.

Nothing that could be a secret is logged: no tokens, cookies, passwords or query strings
of the OIDC callback. Records carry only the message and explicit `extra` fields.
"""
from __future__ import annotations

import json
import logging
import sys
import time

_request_id = None  # set per request by core.web via contextvars-free Flask `g`


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or _current_request_id()
        if rid:
            entry["request_id"] = rid
        for key in ("service", "method", "path", "status", "duration_ms", "org", "job", "user_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _current_request_id():
    try:
        from flask import g, has_request_context

        if has_request_context():
            return getattr(g, "request_id", None)
    except Exception:
        pass
    return None


def configure(service: str, level: str = "INFO") -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that would log URLs with codes or tokens stay quiet.
    for noisy in ("urllib3", "requests", "authlib", "peewee", "apscheduler.executors.default"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.LoggerAdapter(root, {"service": service})
