"""A private PostgreSQL cluster for tests that need a server of their own: one to crash and
restart (the chaos suite), or one started with settings the shared cluster does not have
(``shared_preload_libraries``, as pg_cron needs: see ``pgcron``)."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from pgdb import ROOT, add_test_views

__all__ = ["PrivateCluster", "bindir", "free_port", "load_pgclaim"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def bindir() -> Path:
    """The folder of the newest PostgreSQL server binaries (initdb, pg_ctl)."""
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
    if out.returncode == 0 and (Path(out.stdout.strip()) / "initdb").exists():
        return Path(out.stdout.strip())
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found")
    return found[-1]


def _as_owner(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd


class PrivateCluster:
    """A throwaway PostgreSQL cluster of our own, to crash and restart at will, or started
    with settings of its own (``extra_conf``, appended to ``postgresql.conf``).

    Never used for the shared cluster: ``crash()`` is ``pg_ctl stop -m immediate``.
    """

    def __init__(self, *, max_connections: int = 100, extra_conf: str = "") -> None:
        self.bindir = bindir()
        self.base = Path(tempfile.mkdtemp(prefix="pgclaim-private-"))
        if os.getuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self.data = self.base / "data"
        self.port = free_port()
        user = "postgres" if os.getuid() == 0 else os.environ.get("USER", "postgres")
        self.user = user
        subprocess.run(_as_owner([str(self.bindir / "initdb"), "-D", str(self.data), "-U", user,
                                  "--auth=trust", "-E", "UTF8", "--no-instructions"]),
                       check=True, capture_output=True)
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                    f"unix_socket_directories = '{self.base}'\nmax_connections = {max_connections}\n"
                    "fsync = off\nfull_page_writes = off\n"
                    f"{extra_conf}\n")
        self.start()

    @property
    def url(self) -> str:
        """URL of the maintenance database."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(_as_owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), *args]),
                       check=True, capture_output=True)

    def start(self) -> None:
        """Starts the server and waits until it accepts connections."""
        self._pg_ctl("-l", str(self.base / "server.log"), "-w", "-t", "60", "start")

    def crash(self) -> None:
        """Stops the server at once, as a crash would (``-m immediate``)."""
        self._pg_ctl("-m", "immediate", "-w", "stop")

    def close(self) -> None:
        """Stops the server and deletes its files."""
        with contextlib.suppress(Exception):
            self._pg_ctl("-m", "immediate", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def load_pgclaim(cluster_url: str, dbname: str) -> str:
    """Creates database ``dbname`` loaded from sql/ on the cluster at ``cluster_url``."""
    subprocess.run([str(ROOT / "scripts" / "reload.sh"), cluster_url, dbname],
                   check=True, capture_output=True, text=True)
    url = cluster_url.rsplit("/", 1)[0] + "/" + dbname
    add_test_views(url)
    return url
