# The Lambda runtime's SnapStart hooks (PyPI snapshot-restore-py 1.0.0): typed inline, but shipped
# without a py.typed marker, so pyright asks for a stub. These are its two public functions as it
# declares them.
from collections.abc import Callable
from typing import Any

# Its registries (tests run the hooks as the runtime does).
_before_snapshot_registry: list[Callable[..., Any]]
_after_restore_registry: list[Callable[..., Any]]

def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]: ...
def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]: ...
