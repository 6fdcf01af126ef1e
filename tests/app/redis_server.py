"""A real ``redis-server`` with TLS and a password, as the ElastiCache stand-in (the tests' and the bench's).

Any ``redis-server`` 6.2+ built with TLS runs with ``--port 0 --tls-port … --requirepass …``; the
certificate is a throwaway one, signed by a throwaway CA, both made here with
``cryptography``. :class:`HungServer` accepts connections and never answers.
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
import threading
import time
from pathlib import Path

from tests.app.redis_build import TARGET as BUILT_SERVER


def find_redis_server() -> str | None:
    """The server the tests start: ``$REDIS_SERVER``, else the one ``make setup`` built into this virtualenv
    (tests/app/redis_build.py), else a ``redis-server`` or ``valkey-server`` on PATH (e.g. Debian's)."""
    if os.environ.get("REDIS_SERVER"):
        return os.environ["REDIS_SERVER"]
    if BUILT_SERVER.is_file():
        return str(BUILT_SERVER)
    return shutil.which("redis-server") or shutil.which("valkey-server")


REDIS_SERVER = find_redis_server()
SKIP_REASON = ("no redis-server found: `make setup` builds one with TLS into .venv (tests/app/redis_build.py), "
               "or install one, or set REDIS_SERVER=/path/to/redis-server")


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 and localhost that it signed: (ca, cert, key) PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
        # Key identifiers and usages too: Python 3.13 verifies strictly (VERIFY_X509_STRICT) by default.
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                                  critical=False))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
                critical=True)
        else:
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("test CA", ca_key, "test CA", ca_key, ca=True)
    server = certificate("localhost", server_key, "test CA", ca_key, ca=False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return paths


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@functools.cache
def server_version() -> tuple[int, int]:
    """(major, minor) of REDIS_SERVER, from ``--version`` ("Redis server v=6.2.14 …", "Valkey server v=8.1.1 …")."""
    output = subprocess.run([str(REDIS_SERVER), "--version"], capture_output=True, text=True, check=True).stdout
    major, minor = re.search(r"v=(\d+)\.(\d+)", output).groups()
    return int(major), int(minor)


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


class RedisServer:
    """``redis-server`` on 127.0.0.1 with TLS only (no plain port) and a password; restartable on its port."""

    def __init__(self, directory: Path, certificates: tuple[Path, Path, Path], password: str, *,
                 cluster: bool = False) -> None:
        self.directory, self.password, self.cluster = directory, password, cluster
        self.ca, self.cert, self.key = certificates
        self.port = free_port_with_bus() if cluster and server_version() < (7, 0) else free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        """Start it and wait until it answers (a cluster node: until it also serves every slot)."""
        self.launch()
        self.wait_ready(cluster_ok=True)
        return self

    def launch(self) -> RedisServer:
        """Start it and wait until it answers; a cluster node gets every slot but may not be ready yet (2 s)."""
        if REDIS_SERVER is None:
            raise RuntimeError(SKIP_REASON)
        command = [REDIS_SERVER, "--port", "0", "--tls-port", str(self.port), "--bind", "127.0.0.1",
                   "--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key),
                   "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no",
                   "--requirepass", self.password, "--save", "", "--appendonly", "no",
                   "--dir", str(self.directory), "--logfile", str(self.directory / f"redis-{self.port}.log")]
        if self.cluster:  # one node that serves every slot, over TLS: ElastiCache Serverless' protocol
            command += ["--cluster-enabled", "yes", "--tls-cluster", "yes",
                        "--cluster-config-file", str(self.directory / f"nodes-{self.port}.conf")]
            if server_version() >= (7, 0):
                command += ["--cluster-port", str(free_port())]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready(cluster_ok=False)
        if self.cluster:
            with self.client() as client:
                # ADDSLOTS, not 7.0's ADDSLOTSRANGE: the server make setup builds is Redis 6.2.
                client.execute_command("CLUSTER", "ADDSLOTS", *range(16384))
        return self

    def wait_ready(self, *, cluster_ok: bool = True) -> RedisServer:
        """Wait until it answers PING (and, with ``cluster_ok``, until a cluster node says its state is ok)."""
        deadline = time.monotonic() + 10
        with self.client() as client:
            while True:
                try:
                    client.ping()
                    if not (self.cluster and cluster_ok):
                        return self
                    if b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO"):
                        return self
                except Exception:
                    if self.process is None or self.process.poll() is not None:
                        self.stop()
                        raise RuntimeError(f"redis-server did not start; see {self.directory}") from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server was not ready within 10 s; see {self.directory}")
                time.sleep(0.02)

    def client(self):
        """A plain synchronous client for the tests' own checks."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, ssl=True,
                           ssl_ca_certs=str(self.ca), socket_timeout=2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


class HungServer:
    """Accepts TCP connections and never answers (a frozen node): the client can only time out."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:  # closed
                return
            self.connections.append(connection)

    def close(self) -> None:
        for connection in [*self.connections, self.socket]:
            connection.close()
