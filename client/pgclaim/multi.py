"""One queue served in several databases: one ``Worker`` per database, each in its own thread.

Each database gets its own claims, handler threads, heartbeat and listener, so the databases
are served fairly and one that fails or is slow does not hold the others back: its worker
retries with backoff while the others keep draining.

Signals are handled as a single ``Worker`` handles them (``pgclaim._signals``): the first
SIGTERM/SIGINT stops every worker (each releases what it did not start, lets its running
handlers finish within ``grace`` and deregisters), a second one stops them all now.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from ._signals import StopSignals
from .client import QueueClient
from .retry import log_extra, logger
from .worker import Handler, Worker, WorkerStats


class MultiWorker:
    """Serves ``queue`` in every database of ``targets`` (DSNs or ``QueueClient``s).

    ``worker_options`` are passed to each ``Worker`` (``concurrency`` is per database);
    ``listen_dsns``, when given, holds each database's ``listen_dsn`` (or ``None``), in the
    order of ``targets``. Clients built here from DSNs are closed when ``run`` returns.
    """

    def __init__(
        self,
        targets: Sequence[str | QueueClient],
        queue: str,
        handler: Handler,
        *,
        install_signals: bool = True,
        client_options: dict[str, Any] | None = None,
        listen_dsns: Sequence[str | None] | None = None,
        **worker_options: Any,
    ) -> None:
        if not targets:
            raise ValueError("MultiWorker needs at least one database")
        listen = list(listen_dsns) if listen_dsns is not None else [None] * len(targets)
        if len(listen) != len(targets):
            raise ValueError(f"MultiWorker takes one listen_dsn per database: {len(targets)} "
                             f"database(s), {len(listen)} listen_dsns")
        self.queue = queue
        self.install_signals = install_signals
        self._owned: list[QueueClient] = []
        self.clients: list[QueueClient] = []
        for target in targets:
            if isinstance(target, QueueClient):
                self.clients.append(target)
            else:
                client = QueueClient(target, **(client_options or {}))
                self._owned.append(client)
                self.clients.append(client)
        self.workers = [Worker(c, queue, handler, install_signals=False, listen_dsn=dsn,
                               **worker_options)
                        for c, dsn in zip(self.clients, listen, strict=True)]

    def stop(self, *, now: bool = False) -> None:
        """Stops every worker: each lets its running handlers finish (``Worker.stop``), or,
        with ``now=True``, does not wait for them."""
        for worker in self.workers:
            worker.stop(now=now)

    def run(self, *, until_empty: bool = False) -> list[WorkerStats]:
        """Runs every worker until stopped (or each finds its database empty).

        Returns each worker's stats, in the order of ``targets``. Called from the main thread
        (and ``install_signals``), it takes SIGTERM/SIGINT: the first stops every worker, a
        second stops them now; the previous handlers are restored on return.
        """
        results: list[WorkerStats | None] = [None] * len(self.workers)

        def serve(i: int, worker: Worker) -> None:
            results[i] = worker.run(until_empty=until_empty)

        threads = [threading.Thread(target=serve, args=(i, w), name=f"pgclaim-db{i}", daemon=True)
                   for i, w in enumerate(self.workers)]
        signals = StopSignals(self._on_first_signal, self._on_second_signal,
                              enabled=self.install_signals)
        with signals:
            try:
                for t in threads:
                    t.start()
                while any(t.is_alive() for t in threads):
                    for t in threads:
                        t.join(timeout=0.2)
            finally:
                self.stop()
                for t in threads:
                    t.join()
                for client in self._owned:
                    client.close()
        return [r if r is not None else WorkerStats() for r in results]

    def _on_first_signal(self, name: str) -> None:
        logger.info("pgclaim: received %s, stopping %d worker(s)", name, len(self.workers),
                    extra=log_extra(self.queue))
        self.stop()

    def _on_second_signal(self, name: str) -> None:
        logger.info("pgclaim: received %s again, stopping %d worker(s) now", name,
                    len(self.workers), extra=log_extra(self.queue))
        self.stop(now=True)


__all__ = ["MultiWorker"]
