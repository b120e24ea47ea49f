"""How an ``sftp://`` URL connects: the options paramiko gets, read from the user's OpenSSH client
configuration, and the free space of a directory on the server. Torch-free.

``sftp://user@host:port/path`` names the host, and optionally the user and port; the rest comes from
the ssh configuration the user already has, so that a host ``ssh host`` reaches is a host an upload
reaches: ``~/.ssh/config`` (or the file ``COCKPIT_SSH_CONFIG`` names) gives ``HostName``, ``User``,
``Port`` and ``IdentityFile`` for a ``Host`` entry matching the URL's host; without an
``IdentityFile`` paramiko tries the ssh agent and ``~/.ssh/id_*`` as ``ssh`` does. Nothing here
supplies a password: keys or the agent.

The server's host key is checked as ``ssh`` checks it (fsspec alone would accept any key): against
``~/.ssh/known_hosts`` (or the entry's ``UserKnownHostsFile``); a changed key is refused (a
man-in-the-middle looks like that), and so is an unknown host unless the entry says
``StrictHostKeyChecking no`` or ``accept-new``; the message says to run ``ssh`` once to accept it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: The environment variable naming an OpenSSH client config to read instead of ``~/.ssh/config``.
SSH_CONFIG_ENV = "COCKPIT_SSH_CONFIG"
#: Seconds to wait for the TCP connection, the server's banner and authentication.
CONNECT_TIMEOUT_S = 15.0


def ssh_config_path() -> Path:
    """The OpenSSH client config read for ``sftp://`` URLs."""
    return Path(os.environ.get(SSH_CONFIG_ENV) or Path.home() / ".ssh" / "config").expanduser()


def sftp_options(url: str, timeout: float = CONNECT_TIMEOUT_S) -> dict[str, Any]:
    """Storage options for fsspec's SFTP filesystem for ``url``: what the ssh config says of its host
    (the URL's own user and port win), and connection timeouts. A config that cannot be read raises
    ValueError naming it."""
    import paramiko

    parts = urlsplit(url)
    host = parts.hostname or ""
    options: dict[str, Any] = {"timeout": timeout, "banner_timeout": timeout, "auth_timeout": timeout}
    path = ssh_config_path()
    if path.is_file():
        try:
            config = paramiko.SSHConfig.from_path(str(path))
            entry = config.lookup(host)
        except (OSError, ValueError, paramiko.ssh_exception.ConfigParseError) as exc:
            raise ValueError(f"{path}: unreadable ssh config ({exc})") from None
        if entry.get("hostname") and entry["hostname"] != host:
            options["host"] = entry["hostname"]
        if entry.get("user"):
            options["username"] = entry["user"]
        if entry.get("port"):
            options["port"] = int(entry["port"])
        if entry.get("identityfile"):
            options["key_filename"] = [os.path.expanduser(p) for p in entry["identityfile"]]
        if str(entry.get("identitiesonly", "")).lower() == "yes":
            options["look_for_keys"] = False
            options["allow_agent"] = False
    if parts.username:
        options["username"] = parts.username
    if parts.port:
        options["port"] = parts.port
    entry = entry if path.is_file() else {}
    files = entry.get("userknownhostsfile") or "~/.ssh/known_hosts"
    files = files.split() if isinstance(files, str) else list(files)
    options["host_key_policy"] = known_hosts_policy(
        [Path(os.path.expanduser(f)) for f in files], str(entry.get("stricthostkeychecking", "ask")).lower()
    )
    return options


def known_hosts_policy(files: list[Path], strict: str = "ask"):
    """A paramiko host-key policy that checks the key the server shows against the OpenSSH
    ``known_hosts`` ``files``: a key that differs from the one recorded raises SSHException (always);
    an unknown host raises too unless ``strict`` (``StrictHostKeyChecking``) is ``no``/``off`` or
    ``accept-new``."""
    import paramiko

    class KnownHosts(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key) -> None:
            known = paramiko.HostKeys()
            for file in files:
                if file.is_file():
                    try:
                        known.load(str(file))
                    except (OSError, ValueError):
                        pass
            recorded = known.lookup(hostname) or {}
            if recorded:  # the host is known: its key must be the one recorded
                if recorded.get(key.get_name()) == key:
                    return
                raise paramiko.SSHException(
                    f"the host key of {hostname} differs from the one in {' '.join(map(str, files))}: "
                    "someone may be in the middle, or the server was reinstalled; check, then fix known_hosts"
                )
            if strict in ("no", "off", "accept-new"):
                return
            port = hostname.rsplit(":", 1)[1].rstrip("]") if hostname.startswith("[") else None
            host = hostname.strip("[").split("]")[0]
            raise paramiko.SSHException(
                f"{hostname} is not in {' '.join(map(str, files))}: connect once with "
                f"`ssh {'-p ' + port + ' ' if port else ''}{host}` and accept its key "
                "(or set StrictHostKeyChecking accept-new for it in the ssh config)"
            )

    return KnownHosts()


def sftp_free_bytes(fs: Any, path: str) -> int | None:
    """Bytes free to an unprivileged user at ``path`` on the server of fsspec's SFTP filesystem ``fs``
    (OpenSSH's ``statvfs@openssh.com`` extension), or None when the server does not say."""
    try:
        from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

        kind, msg = fs.ftp._request(CMD_EXTENDED, "statvfs@openssh.com", path)
        if kind != CMD_EXTENDED_REPLY:
            return None
        _bsize, frsize, _blocks, _bfree, bavail = (msg.get_int64() for _ in range(5))
        return int(frsize * bavail)
    except Exception:  # an older or other server, or a private paramiko API that moved: "unknown"
        return None
