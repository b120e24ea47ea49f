"""Real file servers on loopback for the transfer tests (the fixtures in conftest.py start them once
per session, only for the tests that ask): an OpenSSH sshd with a throwaway key pair (sftp://), and
moto's standalone S3-compatible server (s3://).

Each server is reached the way a user reaches theirs: sftp through an ssh client config naming the
key (``COCKPIT_SSH_CONFIG``, see engine/sftp.py), S3 through the ``AWS_*`` environment
(``AWS_ENDPOINT_URL``, which botocore and so s3fs honour). ``env`` holds those variables, for the
test process and for the subprocesses the tests start.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Where Debian's sshd looks for its privilege separation directory when started as root.
PRIVSEP_DIR = Path("/run/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_sshd() -> str | None:
    return shutil.which("sshd") or next(
        (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.path.exists(p)), None
    )


def sshd_or_skip() -> str:
    """The sshd binary; installed with apt-get when missing and this is root (as .ci/run does); the
    test is skipped, saying why, only when it is missing and cannot be installed."""
    sshd = find_sshd()
    if sshd is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            "apt-get update -qq && apt-get install -y -qq openssh-server openssh-client",
            shell=True,
            capture_output=True,
            timeout=300,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        sshd = find_sshd()
    if sshd is None or shutil.which("ssh-keygen") is None:
        pytest.skip(
            "OpenSSH server (sshd, ssh-keygen) is not installed and could not be: apt-get install openssh-server"
        )
    return sshd


@dataclass
class SshServer:
    """A running sshd: ``url`` is ``sftp://USER@127.0.0.1:PORT`` (append an absolute path)."""

    url: str
    user: str
    port: int
    key: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def stop(self) -> None:
        """Stop the server and drop every connection it holds (its per-connection processes too)."""
        import psutil

        children = psutil.Process(self.proc.pid).children(recursive=True)
        self.proc.kill()
        self.proc.wait(10)
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


def start_sshd(root: Path, port: int | None = None) -> SshServer:
    """An sshd with its keys and config in ``root`` (made there the first time; a second start in the
    same ``root`` and ``port`` is the same server back after a stop)."""
    sshd = sshd_or_skip()
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
    for name in ("host_key", "client_key"):
        if not (root / name).exists():
            subprocess.run([*keygen, "-f", str(root / name)], check=True, capture_output=True)
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    (root / "authorized_keys").chmod(0o600)
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    port = port or free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\n"
    )
    # what a user writes in ~/.ssh/config for the host
    (root / "ssh_config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {root / 'client_key'}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {root / 'known_hosts'}\n"
    )
    # the server's key, as `ssh` records it once accepted (a port other than 22: [host]:port)
    host_key = (root / "host_key.pub").read_text().split()[:2]
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_key)}\n")
    log = open(root / "sshd.log", "ab")
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(root / "sshd_config")], stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"SSH-"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"sshd did not start: {(root / 'sshd.log').read_text(errors='replace')}")
        time.sleep(0.05)
    user = getpass.getuser()
    env = {"COCKPIT_SSH_CONFIG": str(root / "ssh_config")}
    return SshServer(f"sftp://{user}@127.0.0.1:{port}", user, port, root / "client_key", env, proc)


@dataclass
class S3Server:
    """A running S3-compatible server; ``env`` is the AWS environment that reaches it."""

    endpoint: str
    env: dict[str, str]
    server: object = None


def start_s3() -> S3Server:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "cockpit-test-key",
        "AWS_SECRET_ACCESS_KEY": "cockpit-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    return S3Server(endpoint, env, server)
