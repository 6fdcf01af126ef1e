"""Container packaging: a function's code and dependencies as one image on AWS's Lambda Python base image.

:func:`stage_build_context` assembles what the image is built from, at synth, without Docker: the
application source with the runtime package (``app/``, as in a zip), the dependency pins
(``requirements.txt``: the lock and what the runtime package needs, as for the layer) and the
multi-stage :data:`DOCKERFILE`. :func:`image_code` hands that folder to CDK as a Docker image
asset: ``cdk synth`` only copies it into ``cdk.out`` (an image is built when ``cdk deploy``
publishes it, on a machine with Docker). The image keeps the zip's ``.pyc`` discipline: the build
stage compiles everything with the base image's own Python (the target version by construction),
``unchecked-hash``, since ``/var/task`` is read-only at run time.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_lambda as lambda_
from fastapi_lambda.requirements import CAPABILITIES, requirements_for

from cdk_app.bundling.install import copy_code
from cdk_app.bundling.locks import TOOL_LOCKS, export_lock, find_lock, is_aws_sdk, locked_requirements, uses_hashes
from cdk_app.bundling.target import BundlingError, BundlingTarget

#: AWS's Lambda base images for Python (the runtime interface client and boto3 included).
BASE_IMAGE = "public.ecr.aws/lambda/python"
#: Where the staged context keeps the application (with the runtime package) and the pins.
APP_DIR, REQUIREMENTS = "app", "requirements.txt"

DOCKERFILE = f"""\
# syntax=docker/dockerfile:1
# Staged by cdk_app.image at synth: app/ (your source and the runtime package) and requirements.txt (the pins).
ARG PYTHON_VERSION=3.13

# Build stage: dependencies from wheels only (no compiler in the base image), then .pyc for this exact Python.
FROM {BASE_IMAGE}:${{PYTHON_VERSION}} AS build
COPY {REQUIREMENTS} /build/{REQUIREMENTS}
RUN python3 -m pip install --no-cache-dir --disable-pip-version-check --no-compile --only-binary=:all: \\
        --target /build/site --requirement /build/{REQUIREMENTS} \\
    && rm -rf /build/site/bin
COPY {APP_DIR}/ /build/site/
# /var/task is read-only at run time: without these every cold start compiles again. Checked by hash, not mtime.
RUN python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /build/site

# Runtime stage: the base image and the compiled tree, nothing of the build.
FROM {BASE_IMAGE}:${{PYTHON_VERSION}}
COPY --from=build /build/site/ ${{LAMBDA_TASK_ROOT}}/
# The handler is the function's ImageConfig command (cdk_app sets it per function).
"""


def requirements(source: Path, target: BundlingTarget) -> list[str]:
    """The pins the image installs: the lock (exported from uv/Poetry), and the runtime package's needs."""
    lock = find_lock(source)
    if lock is None:
        raise BundlingError(f"{source} has no dependency lock; the image installs from requirements.txt (exact pins)")
    with tempfile.TemporaryDirectory() as scratch:
        pins = lock
        if lock.name in TOOL_LOCKS:
            pins = Path(scratch) / REQUIREMENTS
            export_lock(lock, pins)
        wanted = locked_requirements(pins, include_aws_sdk=True)
    if uses_hashes(wanted):  # hash-checking mode installs exactly the lock
        return wanted
    kept = wanted if target.include_aws_sdk else [line for line in wanted if not is_aws_sdk(line)]
    # Every capability's needs: an image is one asset per function, built by Docker at deploy, not pruned.
    return [*kept, *requirements_for(frozenset(CAPABILITIES))]


def stage_build_context(source: Path, target: BundlingTarget, destination: Path) -> Path:
    """Write the image's build context into ``destination`` (an empty or missing folder); returns it.

    Example (build the image yourself, e.g. to scan it, with ``docker build --platform linux/arm64 <context>``)::

        import tempfile
        from pathlib import Path
        from cdk_app.bundling.target import BundlingTarget
        from cdk_app.image import stage_build_context

        context = stage_build_context(Path("lambda_src"), BundlingTarget(architecture="arm64"),
                                      Path(tempfile.mkdtemp()) / "image")
        print((context / "Dockerfile").read_text())
    """
    destination.mkdir(parents=True, exist_ok=True)
    copy_code(source, destination / APP_DIR)
    (destination / REQUIREMENTS).write_text("\n".join(requirements(source, target)) + "\n")
    (destination / "Dockerfile").write_text(DOCKERFILE)
    return destination


def image_code(*, source: Path, target: BundlingTarget, command: str) -> lambda_.Code:
    """The function's code as an image asset built from a context staged now; ``command`` names the handler.

    :class:`cdk_app.function.ServiceFunction` uses it for ``packaging="image"``, which is all most apps need;
    for a function of your own:

    Example::

        from pathlib import Path
        from aws_cdk import aws_lambda as lambda_
        from cdk_app.bundling.target import BundlingTarget
        from cdk_app.image import image_code

        target = BundlingTarget(architecture="arm64")
        lambda_.Function(stack, "Api", handler=lambda_.Handler.FROM_IMAGE, runtime=lambda_.Runtime.FROM_IMAGE,
                         architecture=target.lambda_architecture,
                         code=image_code(source=Path("lambda_src"), target=target, command="service.handler.handler"))
    """
    context = Path(tempfile.mkdtemp(prefix="fastapi-lambda-image-"))
    atexit.register(shutil.rmtree, context, True)  # CDK copies it into the cloud assembly when the function binds it
    stage_build_context(source, target, context)
    return lambda_.Code.from_asset_image(
        str(context), cmd=[command], build_args={"PYTHON_VERSION": target.python_version},
        platform=ecr_assets.Platform.LINUX_ARM64 if target.architecture == "arm64" else ecr_assets.Platform.LINUX_AMD64,
    )
