"""Logs every exception that ends a request as one JSON line on stderr.

`got_request_exception` fires for unhandled exceptions (answered 500) raised anywhere in the
request chain, including middleware (a session save in SessionMiddleware is where a broken cache
backend usually fails), not only in views. Exceptions Django answers with a 4xx itself —
`SessionInterrupted` (400) when the session vanished from the cache during the request,
`SuspiciousOperation`, `PermissionDenied` — never reach that signal; Django logs them with the
exception attached to `django.request` / `django.security`, where `ClientErrorHandler` picks
them up. cachegate reads these lines from the app log to classify failures by their innermost
cause.
"""
import json
import logging
import os
import sys
import traceback

MARKER = "CACHEGATE_EXCEPTION "


def _name(exc):
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _first_line(exc):
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def innermost(exc):
    """Follow explicit causes (`raise ... from ...`) to the root.

    Implicit contexts are not followed: they are often exceptions a library was handling as
    control flow (redis-py's pool raises TypeError while handling its own IndexError), not causes.
    """
    seen = set()
    while exc.__cause__ is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__
    return exc


def chain(exc):
    """Every exception linked to this one, causes and contexts, outermost first (evidence)."""
    out, seen = [], set()
    while exc is not None and id(exc) not in seen and len(out) < 10:
        seen.add(id(exc))
        out.append(f"{_name(exc)}: {_first_line(exc)}")
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return out


def frames(exc, keep=6):
    """The innermost frames of `exc`'s traceback, outermost first, with paths from
    site-packages (or the app's own folder, CACHEGATE_APP_ROOT) on: where a reviewer looks first."""
    root = os.environ.get("CACHEGATE_APP_ROOT", "").rstrip("/") + "/"
    out = []
    for f in traceback.extract_tb(exc.__traceback__)[-keep:]:
        path = f.filename
        if "site-packages/" in path:
            path = path.split("site-packages/", 1)[1]
        elif root != "/" and path.startswith(root):
            path = path[len(root):]
        elif "cgapp/" in path:
            path = "cgapp/" + path.split("cgapp/", 1)[1]
        out.append(f"{path}:{f.lineno} in {f.name}")
    return out


def write_record(exc, request, status):
    root = innermost(exc)
    record = {
        "type": _name(exc),
        "message": _first_line(exc),
        "innermost_type": _name(root),
        "innermost_message": _first_line(root),
        "chain": chain(exc),
        "frames": frames(root),
        "method": getattr(request, "method", ""),
        "path": getattr(request, "path", ""),
        "status": status,
    }
    sys.stderr.write(MARKER + json.dumps(record) + "\n")
    sys.stderr.flush()


def log_exception(sender, request=None, **kwargs):
    exc = sys.exc_info()[1]
    if exc is None:
        return
    # Unhandled: Django answers 500.
    write_record(exc, request, 500)


class ClientErrorHandler(logging.Handler):
    """Records the exceptions Django answered with a 4xx (5xx ones come through the signal)."""

    def emit(self, record):
        status = getattr(record, "status_code", None)
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not isinstance(status, int) or not 400 <= status < 500:
            return
        write_record(exc, getattr(record, "request", None), status)


def install():
    """Connect both: the signal for 500s, the handler for 4xx (on the loggers Django uses)."""
    from django.core.signals import got_request_exception

    got_request_exception.connect(log_exception)
    handler = ClientErrorHandler()
    for name in ("django.request", "django.security"):
        logging.getLogger(name).addHandler(handler)
