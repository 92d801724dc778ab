"""A cap on every body errbot's webserver reads, whoever's route it is.

Our routes and errbot's own (its `/echo` reads and echoes a body nobody signed) share one
listener, so the cap sits in front of every view of errbot's Flask app: a body over
BODY_LIMIT is answered 413 before it is read, declared or chunked.
"""

from __future__ import annotations

import io
import logging

log = logging.getLogger(__name__)

# Slack's payloads are a few kB, /metrics and /health take no body, and errbot's /echo is a
# test hook: nothing this listener serves needs more.
BODY_LIMIT = 1024 * 1024


def limit_bodies(app) -> None:
    """Put `refuse_large_bodies` in front of every view of errbot's Flask app.

    Called at each activation: a plugin reload finds the hook already there. Inserted in
    Flask's list directly, as `before_request` refuses once the app has served a request.
    Flask's MAX_CONTENT_LENGTH is set too, for a view that reads the stream itself."""
    app.config["MAX_CONTENT_LENGTH"] = BODY_LIMIT
    hooks = app.before_request_funcs.setdefault(None, [])
    if not any(getattr(hook, "limits_bodies", False) for hook in hooks):
        hooks.insert(0, refuse_large_bodies)


def refuse_large_bodies():
    """A Flask before-request hook: 413 for a body over BODY_LIMIT, before it is read."""
    from flask import request

    if too_large(request):
        log.warning("refused a call to %s: its body is over %d bytes", request.path, BODY_LIMIT)
        return {"error": f"the body is over {BODY_LIMIT} bytes"}, 413, {"Connection": "close"}
    return None


refuse_large_bodies.limits_bodies = True


def too_large(request) -> bool:
    """Whether the body is over BODY_LIMIT, reading no more than one byte past it.

    A declared Content-Length is checked without reading. A chunked body is read up to
    one byte past the limit and, when it fits, put back for the view to read."""
    length = request.content_length
    if length is not None:
        return length > BODY_LIMIT
    environ = request.environ
    if not environ.get("wsgi.input_terminated"):
        return False  # no length and no chunking: werkzeug reads such a body as empty
    stream, parts, size = environ["wsgi.input"], [], 0
    while size <= BODY_LIMIT:
        part = stream.read(BODY_LIMIT + 1 - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    environ["wsgi.input"] = io.BytesIO(b"".join(parts))
    return size > BODY_LIMIT
