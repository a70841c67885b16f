"""The fault toolbox: a TCP fault proxy, network namespaces, cgroups (and, from pgcluster,
a private cluster).

Every fault here is real: the proxy forwards real PostgreSQL connections, the private cluster
is a real server stopped with ``pg_ctl stop -m immediate``, packet loss is real iptables in a
network namespace, and an out-of-memory kill is the kernel's, in a memory cgroup.
Every object cleans up after itself in ``close()`` (the fixtures call it, also on failure).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pgcluster import free_port

ROOT = Path(__file__).resolve().parents[3]


def _abort_with_rst(writer: asyncio.StreamWriter) -> None:
    """Closes a connection with a TCP reset (SO_LINGER 0), not a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """A TCP proxy in front of PostgreSQL whose behaviour is switched at run time.

    Modes: ``pass``; ``refuse`` (the port is closed: connection refused); ``blackhole``
    (connections are accepted and every byte in either direction is dropped, so the peer
    waits forever); ``partition`` (bytes are held back and delivered when the mode changes,
    as TCP does across a healed partition). Independently: ``delay`` seconds added to every
    chunk in each direction, every ``fail_every``-th new connection reset at once (a fixed
    pattern, so that a run always sees failures once it opened that many connections), and
    ``reset_all()`` resets every open connection (mid-statement when one is in flight).
    """

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1",
                 listen_port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.listen_port = listen_port or free_port(listen_host)
        self.mode = "pass"
        self.delay = 0.0
        self.fail_every = 0
        self.accepted = 0
        self.failed = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._changed: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="fault-proxy")
        self._thread.start()
        self._call(self._init())
        self._call(self._listen())

    # -- control (any thread) ----------------------------------------------------------

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    @property
    def port(self) -> int:
        """The port clients connect to."""
        return self.listen_port

    def dsn(self, base_dsn: str) -> str:
        """``base_dsn`` (a postgresql:// URL) rewritten to go through this proxy."""
        scheme, rest = base_dsn.split("://", 1)
        auth, _, tail = rest.rpartition("@")
        path = tail.split("/", 1)[1] if "/" in tail else ""
        host = f"{self.listen_host}:{self.listen_port}"
        return f"{scheme}://{auth + '@' if auth else ''}{host}/{path}"

    def set(self, mode: str | None = None, *, delay: float | None = None,
            fail_every: int | None = None) -> None:
        """Switches the mode and/or the delay and which new connections fail (every
        ``fail_every``-th; 0 for none)."""
        if mode is not None and mode not in ("pass", "refuse", "blackhole", "partition"):
            raise ValueError(f"unknown proxy mode {mode!r}")
        self._call(self._set(mode, delay, fail_every))

    def reset_all(self) -> int:
        """Resets (RST) every open connection; returns how many."""
        return int(self._call(self._reset_all()))  # type: ignore[call-overload]

    def close(self) -> None:
        """Stops listening, resets every connection and stops the thread."""
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # -- the event loop ----------------------------------------------------------------

    async def _init(self) -> None:
        self._changed = asyncio.Event()

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, self.listen_host, self.listen_port, reuse_address=True)

    async def _unlisten(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _set(self, mode: str | None, delay: float | None,
                   fail_every: int | None) -> None:
        if delay is not None:
            self.delay = delay
        if fail_every is not None:
            self.fail_every = fail_every
        if mode is not None and mode != self.mode:
            self.mode = mode
            if mode == "refuse":
                await self._unlisten()
            else:
                await self._listen()
            assert self._changed is not None
            self._changed.set()
            self._changed = asyncio.Event()

    async def _reset_all(self) -> int:
        writers = list(self._writers)
        for w in writers:
            _abort_with_rst(w)
        self._writers.clear()
        return len(writers)

    async def _shutdown(self) -> None:
        await self._unlisten()
        await self._reset_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.fail_every and self.accepted % self.fail_every == 0:
            self.failed += 1
            _abort_with_rst(writer)
            return
        self._writers.add(writer)
        try:
            while self.mode in ("blackhole", "partition"):
                if self.mode == "blackhole":
                    await self._drain_into_void(reader)
                    return
                assert self._changed is not None
                await self._changed.wait()
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                _abort_with_rst(writer)
                return
            self._writers.add(up_writer)
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _drain_into_void(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(Exception):
            while await reader.read(65536):
                pass

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                while self.mode in ("blackhole", "partition"):
                    if self.mode == "blackhole":
                        data = b""
                        await self._drain_into_void(reader)
                        return
                    assert self._changed is not None
                    await self._changed.wait()
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()


# -- network namespaces --------------------------------------------------------------------

_ns_counter = iter(range(1, 10_000))


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


def netns_available() -> str | None:
    """``None`` when network namespaces and iptables work here, else the reason they do not."""
    if os.getuid() != 0:
        return "network namespaces need root"
    if shutil.which("iptables") is None or shutil.which("ip") is None:
        return "iptables or ip not installed (apt-get install iptables iproute2)"
    name = f"pgcprobe{os.getpid()}"
    try:
        _run(["ip", "netns", "add", name])
        _run(["ip", "netns", "exec", name, "iptables", "-L", "-n"])
    except subprocess.CalledProcessError as exc:
        return f"the kernel refused: {exc.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return None


class NetNamespace:
    """A network namespace joined to the host by a veth pair.

    The host side has ``host_ip``; processes started with ``prefix()`` live inside, where
    ``host_ip`` is the only way out. Faults are iptables rules inside the namespace, on the
    TCP port given (so that other ports, such as the audit's, stay clean).
    """

    def __init__(self) -> None:
        count = next(_ns_counter)
        tag = f"{os.getpid() % 100000}x{count}"
        n = (os.getpid() * 7 + count) % 250 + 1
        self.name = f"pgc{tag}"
        self.host_if, self.ns_if = f"pgh{tag}", f"pgn{tag}"
        self.host_ip, self.ns_ip = f"10.231.{n}.1", f"10.231.{n}.2"
        self._rules: list[list[str]] = []
        _run(["ip", "netns", "add", self.name])
        try:
            _run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if])
            _run(["ip", "link", "set", self.ns_if, "netns", self.name])
            _run(["ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if])
            _run(["ip", "link", "set", self.host_if, "up"])
            self.exec(["ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if])
            self.exec(["ip", "link", "set", self.ns_if, "up"])
            self.exec(["ip", "link", "set", "lo", "up"])
        except Exception:
            self.close()
            raise

    def prefix(self) -> list[str]:
        """The command prefix that runs a program inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def exec(self, cmd: list[str]) -> None:
        """Runs ``cmd`` inside the namespace."""
        _run([*self.prefix(), *cmd])

    def drop(self, port: int, every: int = 1) -> None:
        """Drops packets to and from ``port``: all of them, or every ``every``-th one in each
        direction (iptables' statistic match in nth mode: a fixed pattern, not a draw)."""
        stat = ([] if every <= 1 else
                ["-m", "statistic", "--mode", "nth", "--every", str(every), "--packet", "0"])
        for chain, direction in (("OUTPUT", "--dport"), ("INPUT", "--sport")):
            rule = [chain, "-p", "tcp", direction, str(port), *stat, "-j", "DROP"]
            self.exec(["iptables", "-A", *rule])
            self._rules.append(rule)

    def heal(self) -> None:
        """Removes every rule ``drop`` added."""
        for rule in reversed(self._rules):
            with contextlib.suppress(subprocess.CalledProcessError):
                self.exec(["iptables", "-D", *rule])
        self._rules.clear()

    def close(self) -> None:
        """Deletes the namespace and the veth pair."""
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


# -- cgroups (v1 or v2) --------------------------------------------------------------------

def _cgroup_root(controller: str) -> tuple[Path, int] | None:
    v1 = Path("/sys/fs/cgroup") / controller
    if (v1 / "cgroup.procs").exists():
        return v1, 1
    for v2 in (Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup")):
        ctl = v2 / "cgroup.controllers"
        if ctl.exists() and controller in ctl.read_text().split():
            return v2, 2
    return None


def cgroup_available(controller: str) -> str | None:
    """``None`` when a cgroup of ``controller`` (memory, cpu) can be made here, else why not."""
    if os.getuid() != 0:
        return "cgroups need root"
    found = _cgroup_root(controller)
    if found is None:
        return f"no writable {controller} cgroup hierarchy"
    probe = found[0] / f"pgclaim_probe_{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        return f"the kernel refused a {controller} cgroup: {exc}"
    return None


class Cgroup:
    """A cgroup of ``controller`` with a memory limit or a CPU quota, like a container's."""

    def __init__(self, controller: str, *, memory_bytes: int | None = None,
                 cpu_share: float | None = None) -> None:
        found = _cgroup_root(controller)
        if found is None:
            raise RuntimeError(f"no {controller} cgroup hierarchy")
        root, self.version = found
        self.path = root / f"pgclaim_chaos_{os.getpid()}_{time.monotonic_ns() % 10**9}"
        self.path.mkdir()
        if memory_bytes is not None:
            if self.version == 1:
                (self.path / "memory.limit_in_bytes").write_text(str(memory_bytes))
            else:
                (self.path / "memory.max").write_text(str(memory_bytes))
                (self.path / "memory.swap.max").write_text("0")
        if cpu_share is not None:
            period = 100_000
            if self.version == 1:
                (self.path / "cpu.cfs_period_us").write_text(str(period))
                (self.path / "cpu.cfs_quota_us").write_text(str(int(period * cpu_share)))
            else:
                (self.path / "cpu.max").write_text(f"{int(period * cpu_share)} {period}")

    def join_self(self) -> None:
        """Moves the calling process into the cgroup (use as a ``preexec_fn``)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def oom_kills(self) -> int:
        """How many processes the kernel killed for memory in this cgroup."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        with contextlib.suppress(OSError):
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def pids(self) -> list[int]:
        """The processes in the cgroup."""
        with contextlib.suppress(OSError):
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        return []

    def close(self) -> None:
        """Kills what is left inside and removes the cgroup."""
        for pid in self.pids():
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


# -- a small tmpfs (disk full) -------------------------------------------------------------

@contextlib.contextmanager
def small_tmpfs(size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` owned by postgres, unmounted and removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pgclaim-full-"))
    _run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)])
    try:
        if os.getuid() == 0:
            shutil.chown(path, "postgres", "postgres")
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            path.rmdir()


def mount_available() -> str | None:
    """``None`` when this process may mount a tmpfs, else the reason it may not."""
    if os.getuid() != 0:
        return "mounting a tmpfs needs root"
    try:
        with small_tmpfs("64k"):
            pass
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"the kernel refused a tmpfs mount: {exc}"
    return None
