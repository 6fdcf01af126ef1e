"""``redis-server`` as the local ElastiCache: TLS only, an optional password, optionally cluster mode.

Any ``redis-server`` 6.2+ (or ``valkey-server``) built with TLS serves it with ``--port 0 --tls-port …``:
``$REDIS_SERVER``, else the one ``make setup`` builds into the virtualenv, else one on PATH. Its
certificate is a throwaway one signed by a throwaway CA made here with ``cryptography`` (clients trust
the CA through ``SSL_CERT_FILE``). ElastiCache Serverless speaks the cluster protocol: one node that
owns every slot stands in for it.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cdk_app.local.processes import CHILD_GROUP, free_port, stop_process
from cdk_app.local.template import LocalError


def find_redis_server() -> str | None:
    """``$REDIS_SERVER``, else the server built into this virtualenv (``make setup``), else one on PATH."""
    if os.environ.get("REDIS_SERVER"):
        return os.environ["REDIS_SERVER"]
    built = Path(sys.prefix) / "bin" / "redis-server"
    if built.is_file():
        return str(built)
    return shutil.which("redis-server") or shutil.which("valkey-server")


REDIS_SERVER = find_redis_server()
INSTALL_HINT = ("`make setup` builds one with TLS into .venv; or install one (Debian/Ubuntu: `apt-get install "
                "redis-server`; macOS: `brew install redis`), or set REDIS_SERVER=/path/to/redis-server")


@functools.cache
def server_version() -> tuple[int, int]:
    """(major, minor) of REDIS_SERVER, from ``--version`` ("Redis server v=6.2.14 …", "Valkey server v=8.1.1 …")."""
    output = subprocess.run([str(REDIS_SERVER), "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"v=(\d+)\.(\d+)", output)
    if found is None:
        raise LocalError(f"{REDIS_SERVER} --version printed no version: {output.strip()[:200]}")
    return int(found.group(1)), int(found.group(2))


def free_port_with_bus() -> int:
    """A free port whose +10000 is free too: before 7.0 a cluster node's bus listens there (no ``cluster-port``)."""
    while True:
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 and localhost signed by it: the (ca, cert, key) PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def signed(subject: str, key: Any, *, ca: bool) -> x509.Certificate:
        # Key identifiers and key usages too: Python 3.13 verifies with VERIFY_X509_STRICT by default.
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local CA")]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=7))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(ca_key, hashes.SHA256())

    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(signed("local CA", ca_key, ca=True).public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(signed("localhost", server_key, ca=False).public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


class RedisServer:
    """``redis-server`` on 127.0.0.1 with TLS only (no plain port) and ``password`` (None: none)."""

    def __init__(self, directory: Path, certificates: tuple[Path, Path, Path], password: str | None, *,
                 cluster: bool = False, port: int | None = None) -> None:
        self.directory, self.password, self.cluster = directory, password, cluster
        self.ca, self.cert, self.key = certificates
        self.port = port or (free_port_with_bus() if cluster and server_version() < (7, 0) else free_port())
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.directory / f"redis-{self.port}.log"

    def start(self) -> RedisServer:
        """Start it and wait until it answers (a cluster node: until it serves every slot)."""
        self.launch()
        self.wait_ready(cluster_ok=True)
        return self

    def launch(self) -> RedisServer:
        """Start it and wait until it answers PING; a cluster node is given every slot (ready soon after)."""
        if REDIS_SERVER is None:
            raise LocalError(f"the template has a cache, and redis-server stands in for it: {INSTALL_HINT}")
        command = [REDIS_SERVER, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                   "--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key),
                   "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no",
                   "--save", "", "--appendonly", "no", "--dir", str(self.directory), "--logfile", str(self.log)]
        if self.password:
            command += ["--requirepass", self.password]
        if self.cluster:
            command += ["--cluster-enabled", "yes", "--tls-cluster", "yes",
                        "--cluster-config-file", str(self.directory / f"nodes-{self.port}.conf")]
            if server_version() >= (7, 0):
                command += ["--cluster-port", str(free_port())]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL, process_group=CHILD_GROUP)
        self.wait_ready(cluster_ok=False)
        if self.cluster:
            with self.client() as client:
                # ADDSLOTS, not 7.0's ADDSLOTSRANGE: the server make setup builds is Redis 6.2.
                client.execute_command("CLUSTER", "ADDSLOTS", *range(16384))
        return self

    def wait_ready(self, *, cluster_ok: bool = True, timeout: float = 10) -> RedisServer:
        """Wait until it answers PING (with ``cluster_ok``, also until a cluster node reports state ok)."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                try:
                    client.ping()
                    if not (self.cluster and cluster_ok) or b"cluster_state:ok" in client.execute_command(
                            "CLUSTER", "INFO"):
                        return self
                except Exception:
                    if self.process is None or self.process.poll() is not None:
                        self.stop()
                        raise LocalError(f"redis-server did not start; see {self.log}") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise LocalError(f"redis-server was not ready within {timeout:.0f} s; see {self.log}")
                time.sleep(0.02)

    def client(self) -> Any:
        """A plain synchronous client (for checks; the functions make their own)."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, ssl=True,
                           ssl_ca_certs=str(self.ca), socket_timeout=2)

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
