"""Policy hooks: which ones a file may define and with what arguments, and running one
in a worker thread with a time limit that fails closed (HookFailed names file:line),
with checks of what each hook returned."""

from __future__ import annotations

import inspect
import reprlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..approvers import entry_problem
from ..domain import RequestView
from ..errors import AccessBotError
from .context import PolicyContext, Refusal
from .lines import describe, line_in, running_line
from .model import Resource

# Each hook a policy file may define, with the arguments it is called with.
HOOK_ARGS = {
    "get_approvers": ("request", "ctx"),
    "on_request": ("request", "ctx"),
    "on_approve": ("request", "approval", "ctx"),
    "on_deny": ("request", "denial", "ctx"),
    "after_grant": ("request", "ctx"),
    "after_revoke": ("request", "ctx"),
}
HOOKS = tuple(HOOK_ARGS)


def hook_problem(hook: str, fn: Any) -> str | None:
    """Why `fn` cannot be called as `hook`, with the arguments it gets; None if it can."""
    args = HOOK_ARGS[hook]
    wanted = f"{hook} must be a function taking ({', '.join(args)})"
    if not callable(fn):
        return wanted
    try:
        inspect.signature(fn).bind(*args)
    except TypeError:
        return f"{wanted}, like: def {hook}({', '.join(args)}):"
    except ValueError:
        return None  # a builtin without a signature: let it be called
    return None


class HookFailed(AccessBotError):
    """A hook raised, overran its time limit or returned nonsense; it never approves."""


def run_hook(
    resource: Resource,
    hook: str,
    request: RequestView,
    ctx: PolicyContext,
    timeout: float,
    *,
    between: tuple = (),
    returns: Callable[[Any], str | None] | None = None,
):
    """Run one hook in a worker thread with a time limit; HookFailed names file:line.

    `between` are the arguments between request and ctx (on_approve's `approval`).
    `returns(value)` says what is wrong with what the hook returned (None: nothing); a
    wrong value fails too, naming the line of the `return` that gave it."""
    fn = resource.hooks.get(hook)
    if fn is None:
        return None
    result: dict[str, Any] = {}

    def returned_at(frame, event, _arg):
        if event == "return" and frame.f_code is fn.__code__:
            result["line"] = frame.f_lineno

    def target():
        sys.setprofile(returned_at)  # this thread only: where the hook returned from
        try:
            result["value"] = fn(request, *between, ctx)
        except BaseException as exc:  # noqa: BLE001 - any failure must fail closed
            result["error"] = exc
        finally:
            sys.setprofile(None)

    worker = threading.Thread(target=target, name=f"policy-{hook}", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        # The thread cannot be killed; it is a daemon, and whatever it returns is ignored.
        line = running_line(worker, fn.__code__.co_filename) or fn.__code__.co_firstlineno
        raise HookFailed(
            f"{resource.file}:{line}: {hook} took longer than {timeout:g}s (ACCESS_HOOK_TIMEOUT)"
        )
    if "error" in result:
        exc = result["error"]
        path = Path(fn.__code__.co_filename)
        raise HookFailed(f"{resource.file}:{line_in(path, exc)}: {hook} raised {describe(exc)}")
    value = result.get("value")
    problem = returns(value) if returns is not None else None
    if problem:
        line = result.get("line") or fn.__code__.co_firstlineno
        shown = reprlib.repr(value)
        raise HookFailed(f"{resource.file}:{line}: {hook} returned {shown}{problem}")
    return value


def approvers_problem(value: Any) -> str | None:
    """What is wrong with what get_approvers returned, as the rest of "returned ...";
    None when it is a list of entries (an empty one means: the listed approvers)."""
    if isinstance(value, str) or not isinstance(value, (list, tuple, set)):
        return ", not a list of approvers like ['@alice', 'group:sre']"
    entries = [str(e).strip() for e in value if str(e).strip()]
    problem = next(filter(None, map(entry_problem, entries)), None)
    return f": {problem}" if problem else None


def refusal_problem(value: Any) -> str | None:
    """What is wrong with what on_approve / on_deny returned; None for a refusal or None."""
    if value is None or isinstance(value, Refusal):
        return None
    return "; it must return ctx.refuse(reason) or None"


def decision_problem(value: Any) -> str | None:
    """What is wrong with what on_request returned; None for a decision or None."""
    if value is None or (hasattr(value, "approve") and hasattr(value, "reason")):
        return None
    return "; it must return ctx.approve(reason), ctx.deny(reason) or None"
