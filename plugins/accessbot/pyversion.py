"""Which Python the bot needs, checked before anything that needs it is imported (the
package's __init__, the plugin's first lines, `make`): "accessbot needs Python 3.11 or
newer; this is 3.10.12" instead of an ImportError about `datetime.UTC`.

Keep this file importable and runnable by old Pythons: no newer syntax, no imports but
`sys`. Run as a script (the Makefile does), it exits 1 with the message."""

import sys

NEEDED = (3, 11)


def version_problem(version=None):
    """The message for a Python older than NEEDED (`version`: a version_info-like tuple,
    default this interpreter's), or None when it is new enough."""
    version = tuple(sys.version_info if version is None else version)
    if version[:2] >= NEEDED:
        return None
    shown = ".".join(str(part) for part in version[:3])
    return "accessbot needs Python {}.{} or newer; this is {}".format(*NEEDED, shown)


def require_python(version=None):
    """Raise ImportError (SystemExit under `python -m accessbot`: a message, not a
    traceback) when this Python is too old."""
    problem = version_problem(version)
    if problem is None:
        return
    if sys.argv[:1] == ["-m"]:  # the package is being imported for `python -m accessbot`
        raise SystemExit(problem)
    raise ImportError(problem)


if __name__ == "__main__":
    problem = version_problem()
    if problem:
        sys.exit(
            problem + ": install Python 3.11 or newer and run make with it, e.g. "
            "`make PYTHON3=python3.11 run` (after `make clean` if .venv was made by this one)"
        )
