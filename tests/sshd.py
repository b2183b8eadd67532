"""A real OpenSSH server on 127.0.0.1 for the SSH harness tests.

Per test session: fresh host and user keys in a temp dir, an sshd on a free high port with its
own config (StrictModes no, because the keys live under /tmp), a known_hosts holding exactly
its host key, and an ssh config file naming it `loopdev`. Nothing outside 127.0.0.1 is touched.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Server:
    root: Path
    port: int
    ssh_config: Path
    known_hosts: Path
    host_key: Path
    proc: subprocess.Popen | None = None

    @property
    def destination(self) -> str:
        return f"root@127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "sshd.log", "ab"),
            start_new_session=True,  # its own process group: stop() kills every connection too
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError((self.root / "sshd.log").read_text()[-500:]) from None
                time.sleep(0.1)
        raise RuntimeError("sshd did not start listening")

    def stop(self) -> None:
        """Kills the listener and every connection it serves, like a board losing power."""
        if self.proc and self.proc.poll() is None:
            for pid in [*_descendants(self.proc.pid), self.proc.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=10)
        self.proc = None

    def rotate_host_key(self) -> None:
        """Gives the server a new host key (a re-flashed board, or an attacker)."""
        self.stop()
        self.host_key.unlink()
        Path(str(self.host_key) + ".pub").unlink()
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)], check=True
        )
        self.start()


def _descendants(pid: int) -> list[int]:
    """Every process below pid (sshd's per-connection processes may start their own sessions)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def make_server(root: Path, alias: str = "loopdev") -> Server:
    if not os.path.exists(SSHD) or not shutil.which("ssh-keygen"):
        raise FileNotFoundError("openssh-server is not installed (make test-deps installs it)")
    root.mkdir(parents=True, exist_ok=True)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    port = free_port()
    host_key, user_key = root / "host_ed25519", root / "user_ed25519"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (root / "authorized_keys").write_text(Path(str(user_key) + ".pub").read_text())
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {root}/sshd.pid\n"
        f"AuthorizedKeysFile {root}/authorized_keys\nStrictModes no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin yes\nUsePAM no\n"
        "MaxSessions 30\nMaxStartups 30\nLogLevel ERROR\n"
        # bash sources ~/.bashrc for a command sent over ssh only when SHLVL < 2. Root's rc on
        # these machines runs `pyenv init`, whose rehash takes a lock; a session killed
        # mid-rehash leaves it stale and every later command then waits 60 s for it. A board's
        # login shell is not what the harness tests, so the test server skips it.
        "SetEnv SHLVL=1\n"
    )
    known = root / "known_hosts"
    pub = Path(str(host_key) + ".pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    config = root / "ssh_config"
    config.write_text(
        f"Host {alias} 127.0.0.1\n  HostName 127.0.0.1\n  Port {port}\n  User root\n"
        f"  IdentityFile {user_key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n"
        "  StrictHostKeyChecking yes\n  GlobalKnownHostsFile /dev/null\n"
    )
    return Server(root, port, config, known, host_key)
