"""Docker-free bundling of the Lambda code and of its dependency layer.

- :mod:`cdk_app.bundling.target`: what a bundle is built for (:class:`BundlingTarget`), and what
  changes its hash;
- :mod:`cdk_app.bundling.interpreters`: an interpreter of the target Python, to compile ``.pyc``
  (no CDK import: the local stack uses it);
- :mod:`cdk_app.bundling.locks`: the source's lock (requirements.txt, uv or Poetry), read as pins;
- :mod:`cdk_app.bundling.install`: pip for the Lambda platform, the completeness check, ``.pyc``;
- :mod:`cdk_app.bundling.assets`: the layer and code assets, built by CDK's local bundler.

The names below load on first use, from the module that defines them, so ``find_python`` does
not start the jsii runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "find_python": "interpreters", "missing_interpreter_message": "interpreters",
    "BundlingError": "target", "BundlingTarget": "target", "Kind": "target", "BUNDLER_REVISION": "target",
    "RUNTIME_NAME": "target", "RUNTIME_PACKAGE": "target", "RUNTIME_REVISION": "target",
    "AWS_SDK_PACKAGES": "locks", "LOCK_FILE": "locks", "LOCK_INPUTS": "locks", "TOOL_LOCKS": "locks",
    "export_lock": "locks", "find_lock": "locks", "locked_requirements": "locks",
    "CODE_EXCLUDES": "install", "compile_bytecode": "install", "copy_code": "install",
    "install_dependencies": "install", "pip_install_command": "install", "remove_distributions": "install",
    "strip_installed": "install", "unmet_requirements": "install",
    "LAMBDA_SRC": "assets", "LocalPythonBundler": "assets", "application_code": "assets",
    "build_locally": "assets", "bundling_options": "assets", "dependencies_code": "assets",
    "resolve_source": "assets",
}
__all__ = [  # a literal list: what type checkers read as the exports
    "AWS_SDK_PACKAGES", "BUNDLER_REVISION", "BundlingError", "BundlingTarget", "CODE_EXCLUDES", "Kind",
    "LAMBDA_SRC", "LOCK_FILE", "LOCK_INPUTS", "LocalPythonBundler", "RUNTIME_NAME", "RUNTIME_PACKAGE",
    "RUNTIME_REVISION", "TOOL_LOCKS", "application_code", "build_locally", "bundling_options",
    "compile_bytecode", "copy_code", "dependencies_code", "export_lock", "find_lock", "find_python",
    "install_dependencies", "locked_requirements", "missing_interpreter_message", "pip_install_command",
    "remove_distributions", "resolve_source", "strip_installed", "unmet_requirements",
]

if TYPE_CHECKING:  # the same names, for type checkers and IDEs
    from cdk_app.bundling.assets import (  # noqa: F401
        LAMBDA_SRC,
        LocalPythonBundler,
        application_code,
        build_locally,
        bundling_options,
        dependencies_code,
        resolve_source,
    )
    from cdk_app.bundling.install import (  # noqa: F401
        CODE_EXCLUDES,
        compile_bytecode,
        copy_code,
        install_dependencies,
        pip_install_command,
        remove_distributions,
        strip_installed,
        unmet_requirements,
    )
    from cdk_app.bundling.interpreters import find_python, missing_interpreter_message  # noqa: F401
    from cdk_app.bundling.locks import (  # noqa: F401
        AWS_SDK_PACKAGES,
        LOCK_FILE,
        LOCK_INPUTS,
        TOOL_LOCKS,
        export_lock,
        find_lock,
        locked_requirements,
    )
    from cdk_app.bundling.target import (  # noqa: F401
        BUNDLER_REVISION,
        RUNTIME_NAME,
        RUNTIME_PACKAGE,
        RUNTIME_REVISION,
        BundlingError,
        BundlingTarget,
        Kind,
    )


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cdk_app.bundling' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cdk_app.bundling.{_EXPORTS[name]}"), name)
