"""Logs every unhandled exception of a request as one JSON line on stderr.

`got_request_exception` fires for exceptions raised anywhere in the request chain, including
middleware (a session save in SessionMiddleware is where a broken cache backend usually fails),
not only in views. cachegate reads these lines from the app log to classify failures by their
innermost cause.
"""
import json
import sys

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


def log_exception(sender, request=None, **kwargs):
    exc = sys.exc_info()[1]
    if exc is None:
        return
    root = innermost(exc)
    record = {
        "type": _name(exc),
        "message": _first_line(exc),
        "innermost_type": _name(root),
        "innermost_message": _first_line(root),
        "chain": chain(exc),
        "method": getattr(request, "method", ""),
        "path": getattr(request, "path", ""),
    }
    sys.stderr.write(MARKER + json.dumps(record) + "\n")
    sys.stderr.flush()
