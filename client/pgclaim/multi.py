"""One queue served in several databases: one ``Worker`` per database, each in its own thread.

Each database gets its own claims, handler threads, heartbeat and listener, so the databases
are served fairly and one that fails or is slow does not hold the others back: its worker
retries with backoff while the others keep draining.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from typing import Any

from .client import QueueClient
from .retry import log_extra, logger
from .worker import Handler, Worker, WorkerStats, _install_stop_signals, _restore_signals


class MultiWorker:
    """Serves ``queue`` in every database of ``targets`` (DSNs or ``QueueClient``s).

    ``worker_options`` are passed to each ``Worker`` (``concurrency`` is per database).
    Clients built here from DSNs are closed when ``run`` returns.
    """

    def __init__(
        self,
        targets: Sequence[str | QueueClient],
        queue: str,
        handler: Handler,
        *,
        install_signals: bool = True,
        client_options: dict[str, Any] | None = None,
        **worker_options: Any,
    ) -> None:
        if not targets:
            raise ValueError("MultiWorker needs at least one database")
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
        self.workers = [Worker(c, queue, handler, install_signals=False, **worker_options)
                        for c in self.clients]

    def stop(self) -> None:
        """Stops every worker (each one lets its running handlers finish)."""
        for worker in self.workers:
            worker.stop()

    def run(self, *, until_empty: bool = False) -> list[WorkerStats]:
        """Runs every worker until stopped (or each finds its database empty).

        Returns each worker's stats, in the order of ``targets``. SIGTERM/SIGINT stop them all
        when called from the main thread.
        """
        previous: dict[int, Any] = {}
        if self.install_signals:
            def on_signal(signum: int) -> None:
                logger.info("pgclaim: received %s, stopping %d worker(s)",
                            signal.Signals(signum).name, len(self.workers),
                            extra=log_extra(self.queue))
                self.stop()

            previous = _install_stop_signals(on_signal)

        results: list[WorkerStats | None] = [None] * len(self.workers)

        def serve(i: int, worker: Worker) -> None:
            results[i] = worker.run(until_empty=until_empty)

        threads = [threading.Thread(target=serve, args=(i, w), name=f"pgclaim-db{i}", daemon=True)
                   for i, w in enumerate(self.workers)]
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
            _restore_signals(previous)
            for client in self._owned:
                client.close()
        return [r if r is not None else WorkerStats() for r in results]


__all__ = ["MultiWorker"]
