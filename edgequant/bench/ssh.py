"""SSH transport over the system OpenSSH client.

Using `ssh` itself (not a Python SSH library) means ~/.ssh/config, agents, ProxyJump, known_hosts
and certificates work exactly as the user set them up. Every call is an argument list (no local
shell); the remote command is built from shlex-quoted words, so a file named
`a b;touch PWNED.tflite` is one argument on the device too. BatchMode stops password prompts
from hanging a fleet, ConnectTimeout bounds dead hosts, and ControlMaster/ControlPersist reuse
one connection (the control sockets live in a private 0700 directory). Host keys are checked as
the user configured; `accept_new=True` is an explicit opt-in to trust-on-first-use, and checking
is never turned off.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import tempfile
from collections.abc import Sequence

TRANSPORT_EXIT = 255  # ssh's own failure (connect, auth, host key), as opposed to the command's


class TransportError(Exception):
    """ssh could not reach or authenticate to the device: worth a retry."""


class RemoteError(Exception):
    """The device was reached but the remote command failed."""


@dataclasses.dataclass(frozen=True)
class Destination:
    """An ssh alias (`coral-1`) or `user@host[:port]`."""

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> Destination:
        user, _, rest = text.rpartition("@") if "@" in text else (None, "", text)
        host, port = rest, None
        if rest.count(":") == 1:
            host, p = rest.split(":")
            if not p.isdigit():
                raise ValueError(f"bad port in ssh destination '{text}'")
            port = int(p)
        if not host or host.startswith("-"):
            raise ValueError(f"bad ssh destination '{text}'")
        return cls(host, user or None, port)

    def args(self) -> list[str]:
        a = ["-p", str(self.port)] if self.port else []
        return [*a, f"{self.user}@{self.host}" if self.user else self.host]

    def __str__(self) -> str:
        return (
            (f"{self.user}@" if self.user else "")
            + self.host
            + (f":{self.port}" if self.port else "")
        )


def _control_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), f"edgequant-ssh-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


@dataclasses.dataclass
class Transport:
    destination: Destination
    ssh_config: str | None = None  # handed to ssh as -F
    connect_timeout: int = 10
    accept_new: bool = False
    persist_secs: int = 60
    log: list[list[str]] = dataclasses.field(default_factory=list)  # every command run

    def base(self) -> list[str]:
        a = ["ssh"]
        if self.ssh_config:
            a += ["-F", self.ssh_config]
        a += [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout}",
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={_control_dir()}/%C",
            "-o",
            f"ControlPersist={self.persist_secs}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ]
        if self.accept_new:
            a += ["-o", "StrictHostKeyChecking=accept-new"]
        return a

    def call(
        self, words: Sequence[str], timeout: float, stdin: bytes | None = None
    ) -> tuple[int, str, str]:
        """Runs one remote command (a list of words, each quoted for the remote shell) and
        returns (exit status, stdout, stderr); raises only when ssh itself failed."""
        remote = " ".join(shlex.quote(w) for w in words)
        cmd = [*self.base(), *self.destination.args(), "--", remote]
        self.log.append(cmd)
        try:
            proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RemoteError(f"timed out after {timeout:.0f} s: {' '.join(words[:2])}") from None
        err = proc.stderr.decode(errors="replace").strip()
        if proc.returncode == TRANSPORT_EXIT:
            first = next((ln for ln in err.splitlines() if ln.strip()), "ssh failed")
            if (
                "REMOTE HOST IDENTIFICATION HAS CHANGED" in err
                or "Host key verification failed" in err
            ):
                raise RemoteError(
                    f"host key verification failed for {self.destination}: refusing "
                    "to connect (the device's key changed or is unknown)"
                )
            raise TransportError(f"{self.destination}: {first}")
        return proc.returncode, proc.stdout.decode(errors="replace"), err

    def run(self, words: Sequence[str], timeout: float, stdin: bytes | None = None) -> str:
        """Like call(), but a non-zero exit of the remote command raises RemoteError."""
        rc, out, err = self.call(words, timeout, stdin)
        if rc != 0:
            last = err.splitlines()[-1] if err else f"exit status {rc}"
            raise RemoteError(f"{self.destination}: {words[0]} failed: {last}")
        return out

    def close(self) -> None:
        """Ends the shared master connection (ssh -O exit)."""
        subprocess.run(
            [*self.base(), "-O", "exit", *self.destination.args()], capture_output=True, timeout=10
        )
