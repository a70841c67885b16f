"""A process-wide identity: ``instance_id()`` names this process in the database.

It is the worker id in ``pgclaim.worker_status`` and the ``application_name`` of the client's
connections in ``pg_stat_activity``, so an operator can tell containers and processes apart.
"""
from __future__ import annotations

import os
import re
import secrets
import socket
import threading
import time

_lock = threading.Lock()
_cached: tuple[int, str] | None = None

#: the longest instance id; ``application_name`` keeps 63 bytes and we prefix it with "pgclaim ".
MAX_LENGTH = 55


def _host() -> str:
    name = os.environ.get("HOSTNAME") or socket.gethostname() or "host"
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", name.split(".")[0]) or "host"
    return name[:24]


def _compute() -> str:
    started = format(int(time.time()), "x")
    return f"{_host()}:{os.getpid()}:{started}:{secrets.token_hex(3)}"[:MAX_LENGTH]


def instance_id() -> str:
    """This process's id: ``host:pid:start-time(hex):random``, unique per process.

    Computed once per process (a forked child computes its own: the pid is part of the key).
    """
    global _cached
    pid = os.getpid()
    with _lock:
        if _cached is None or _cached[0] != pid:
            _cached = (pid, _compute())
        return _cached[1]


def application_name(suffix: str = "") -> str:
    """The ``application_name`` the client's connections carry (63 bytes at most)."""
    return (f"pgclaim {instance_id()}{suffix}")[:63]
