"""Errors that already say what to do, printed as such: the message, not 60 lines of jsii traceback.

A CDK app fails for three kinds of reasons these constructs explain themselves: invalid settings
(:class:`cdk_app.settings.ConfigError`, one line per problem), a prop or a combination of props
that cannot work (:class:`cdk_app.settings.rules.RuleError`, or a ``ValueError`` raised by a
construct of this package), an asset that cannot be built
(:class:`cdk_app.bundling.BundlingError`: an unpinned lock, a missing interpreter), and the
rule packs' refusal at synth (cdk-nag, the deploy preflight: CDK has printed each finding above).
A bundling error is raised inside a jsii callback, so Python sees it only as the context of the
jsii ``RuntimeError``: the chain is searched.

Use it in your app's entry point::

    from cdk_app.errors import one_line_errors

    app = App()
    with one_line_errors():
        MyStack(app, "my-stack")
        app.synth()

or :func:`install_excepthook` once at the top. ``CDK_APP_TRACEBACK=1`` shows the traceback
anyway; any other error keeps its traceback.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

#: Set to 1 to see the traceback of an error this module would shorten.
TRACEBACK_VARIABLE = "CDK_APP_TRACEBACK"
PACKAGE = Path(__file__).resolve().parent
#: jsii's words around a local bundler's error: "Failed to bundle asset <path>, bundle output ...: <type>: <message>".
_FAILED_ASSET = re.compile(r"Failed to bundle asset (?P<path>\S+?)(?:/Code)?(?:/Stage)?,")


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error`` and every exception it was raised from or while handling (jsii raises ``from`` the JavaScript
    error, while handling the Python one)."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [linked for linked in (current.__cause__, current.__context__) if linked is not None]


def _raised_here(error: BaseException) -> bool:
    """Whether the innermost frame of ``error``'s traceback is in this package (a construct's own check)."""
    traceback, last = error.__traceback__, None
    while traceback is not None:
        last, traceback = traceback, traceback.tb_next
    return last is not None and Path(last.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE)


def explain(error: BaseException) -> str | None:
    """The message to print instead of a traceback, or None when ``error`` is not one that explains itself."""
    from cdk_app.bundling.target import BundlingError  # imports CDK: only when an error is being explained
    from cdk_app.settings import ConfigError
    from cdk_app.settings.rules import RuleError

    if isinstance(error, RuntimeError) and str(error).startswith("ValidationFailed"):
        # cdk-nag or the deploy preflight refused a resource: CDK has printed each finding (rule, construct, value,
        # fix) above; the Python traceback of the jsii call would add nothing.
        return str(error).splitlines()[0].removeprefix("ValidationFailed: ")
    for cause in _chain(error):
        if isinstance(cause, ConfigError | RuleError):
            return str(cause)
        if isinstance(cause, BundlingError):
            asset = _FAILED_ASSET.search(str(error))
            return f"{asset['path']}: {cause}" if asset else str(cause)
        if isinstance(cause, ValueError | TypeError) and _raised_here(cause):
            return str(cause)
    return None


def _shortened(error: BaseException) -> str | None:
    return None if os.environ.get(TRACEBACK_VARIABLE, "") not in ("", "0") else explain(error)


@contextmanager
def one_line_errors() -> Generator[None, None, None]:
    """Exit with status 1 and the message alone when an error inside explains itself; others pass unchanged."""
    try:
        yield
    except Exception as error:
        message = _shortened(error)
        if message is None:
            raise
        raise SystemExit(message) from None


ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]


def install_excepthook() -> ExceptHook:
    """Print an uncaught error that explains itself as its message alone; returns the hook it replaced."""
    previous = sys.excepthook

    def hook(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
        message = _shortened(error) if isinstance(error, Exception) else None
        if message is None:
            previous(kind, error, traceback)
        else:
            print(message, file=sys.stderr)

    sys.excepthook = hook
    return previous
