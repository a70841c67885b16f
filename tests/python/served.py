"""A ``pgclaim`` command that serves HTTP (exporter, worker metrics, dashboard), run as a
process for the tests; its URL is read from the line it prints when it listens."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

PGCLAIM = str(Path(sys.executable).with_name("pgclaim"))


class Served:
    """``pgclaim *args`` as a process; ``url`` is the first URL matching ``pattern`` (one
    group) that it prints on stderr. ``stop()`` sends SIGTERM and returns the exit status."""

    def __init__(self, *args: str, pattern: str = r"(http://127\.0\.0\.1:\d+/metrics)",
                 env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [PGCLAIM, *args], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        assert self.proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                self.url = match.group(1)
                return
        self.stop()
        raise AssertionError("no URL printed:\n" + "".join(self.lines))

    def stop(self) -> int:
        """SIGTERM, then the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.stderr is not None:
                self.proc.stderr.close()
