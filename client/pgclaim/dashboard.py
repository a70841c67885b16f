"""``pgclaim dashboard``: a read-only web page over a pgclaim database (Starlette and uvicorn,
``pip install 'pgclaim[dashboard]'``), rendered on the server, refreshed by a few lines of
plain JavaScript; no build step.

It shows the queues (records by status, oldest pending age, counters and rates), the
workers with their last heartbeat, stuck records, the newest dead letters with their
errors, and a plot of completions and failures over the last hour. Every read is bounded
(docs/monitoring.md): ``pgclaim.metrics()`` (no finished record read), ``worker_status``,
at most 50 stuck records and 20 dead letters. The plot comes from the counters, sampled by
the dashboard itself every ``sample_every`` seconds and kept for an hour in memory, so it
starts empty and costs the database one ``metrics()`` call per sample.

Admin actions (retry the failed records of a queue, cancel a stuck record, pause and resume
a queue) exist only with ``allow_actions``, which needs a login that is a member of
``pgclaim_admin`` (checked in the database at start, and enforced there by the grants);
each asks for a confirmation in the browser and carries a token that only the page knows,
so another site cannot post them through a logged-in browser.
"""
from __future__ import annotations

import collections
import contextlib
import html
import itertools
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - the dev install has it
    raise ImportError("pgclaim: the dashboard needs starlette and uvicorn: "
                      "pip install 'pgclaim[dashboard]'") from exc

from ._signals import StopSignals
from .client import Metric, QueueClient
from .errors import PgclaimError

log = logging.getLogger("pgclaim.dashboard")

#: the actions ``allow_actions`` offers, and the client method each calls
ACTIONS = ("retry_failed", "cancel", "pause", "resume")
ADMIN_CHECK = "select pg_catalog.pg_has_role(current_user, 'pgclaim_admin', 'member')"


@dataclass(frozen=True)
class Sample:
    """The counters summed over every queue at one moment (``time.time()``)."""

    at: float
    by_queue: dict[str, dict[str, float]]

    def total(self, metric: str) -> float:
        """``metric`` summed over the queues."""
        return sum(values.get(metric, 0.0) for values in self.by_queue.values())


def by_queue(rows: Sequence[Metric]) -> dict[str, dict[str, float]]:
    """The rows of ``pgclaim.metrics()`` per queue: ``{queue: {name[:status]: value}}``."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        if row.queue is not None:
            key = row.metric + (f":{row.status}" if row.status else "")
            out.setdefault(row.queue, {})[key] = row.value
    return out


def rate_per_minute(samples: Sequence[Sample], queue: str, metric: str,
                    window: float = 300.0) -> float | None:
    """How fast ``metric`` of ``queue`` grew over the last ``window`` seconds of samples, per
    minute; ``None`` before two samples span some time."""
    if len(samples) < 2:
        return None
    last = samples[-1]
    first = next((s for s in samples if s.at >= last.at - window), samples[0])
    if last.at - first.at <= 0 or queue not in first.by_queue:
        return None
    grown = last.by_queue.get(queue, {}).get(metric, 0.0) - first.by_queue[queue].get(metric, 0.0)
    return max(grown, 0.0) * 60.0 / (last.at - first.at)


def throughput_svg(samples: Sequence[Sample], now: float, width: int = 720,
                   height: int = 160) -> str:
    """An inline SVG plot of completions and failures per minute over the last hour."""
    start = now - 3600.0
    series: dict[str, list[tuple[float, float]]] = {"completions_total": [],
                                                    "failures_total": []}
    for before, after in itertools.pairwise(samples):
        span = after.at - before.at
        if after.at < start or span <= 0:
            continue
        for metric, points in series.items():
            grown = max(after.total(metric) - before.total(metric), 0.0)
            points.append((after.at, grown * 60.0 / span))
    top = max([v for points in series.values() for _, v in points] + [1.0])
    pad = 30

    def xy(at: float, value: float) -> str:
        x = pad + (at - start) / 3600.0 * (width - 2 * pad)
        y = height - pad - value / top * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    lines = []
    for (metric, points), colour in zip(series.items(), ("#2b7a2b", "#b02a2a"), strict=True):
        if points:
            lines.append(f'<polyline class="series" data-metric="{metric}" fill="none" '
                         f'stroke="{colour}" stroke-width="2" '
                         f'points="{" ".join(xy(a, v) for a, v in points)}"/>')
    return (f'<svg id="throughput" width="{width}" height="{height}" role="img" '
            f'aria-label="completions and failures per minute, last hour">'
            f'<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}" '
            f'fill="#fafafa" stroke="#ccc"/>{"".join(lines)}'
            f'<text x="{pad}" y="{pad - 8}" font-size="11">{top:.0f}/min</text>'
            f'<text x="{pad}" y="{height - 8}" font-size="11">-60 min</text>'
            f'<text x="{width - pad}" y="{height - 8}" font-size="11" text-anchor="end">now'
            f'</text><text x="{width - pad}" y="{pad - 8}" font-size="11" text-anchor="end">'
            f'<tspan fill="#2b7a2b">completions</tspan> <tspan fill="#b02a2a">failures'
            f'</tspan></text></svg>')


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _age(value: timedelta | float | None) -> str:
    if value is None:
        return "-"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 10 else f"{value:.1f}".rstrip(
        "0").rstrip(".") or "0"


def _button(action: str, label: str, confirm: str, **data: Any) -> str:
    attrs = "".join(f' data-{k}="{_e(v)}"' for k, v in data.items())
    return (f'<button type="button" data-action="{action}" data-confirm="{_e(confirm)}"'
            f'{attrs}>{_e(label)}</button>')


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pgclaim dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; margin: 0 0 .2em; }} h2 {{ font-size: 1.05em; margin: 1.4em 0 .4em; }}
table {{ border-collapse: collapse; }} th, td {{ padding: .25em .7em; border-bottom: 1px solid #ddd;
 text-align: right; }} th:first-child, td:first-child, td.text {{ text-align: left; }}
td.error {{ text-align: left; font-family: monospace; max-width: 40em; white-space: pre-wrap; }}
.muted {{ color: #777; }} .bad {{ color: #b02a2a; }} button {{ margin-left: .3em; }}
</style></head>
<body data-token="{token}" data-refresh="{refresh}">
<h1>pgclaim</h1>
<div class="muted">{database} &middot; refreshed every {refresh} s &middot;
<span id="refreshed">{when}</span>{actions_note}</div>
<div id="content">{content}</div>
<script>
(function () {{
  var body = document.body;
  function refresh() {{
    fetch("fragment", {{cache: "no-store"}}).then(function (r) {{
      if (!r.ok) throw new Error(r.status);
      return r.text();
    }}).then(function (text) {{
      document.getElementById("content").innerHTML = text;
      document.getElementById("refreshed").textContent = new Date().toLocaleTimeString();
    }}).catch(function (e) {{
      document.getElementById("refreshed").textContent = "refresh failed: " + e.message;
    }});
  }}
  setInterval(refresh, 1000 * Number(body.dataset.refresh));
  document.addEventListener("click", function (ev) {{
    var b = ev.target.closest("button[data-action]");
    if (!b || !window.confirm(b.dataset.confirm)) return;
    fetch("action", {{method: "POST", headers: {{"Content-Type": "application/json",
      "X-Pgclaim-Token": body.dataset.token}},
      body: JSON.stringify({{action: b.dataset.action, queue: b.dataset.queue || null,
        id: b.dataset.id ? Number(b.dataset.id) : null}})}})
      .then(function (r) {{ return r.json(); }})
      .then(function (j) {{ document.getElementById("refreshed").textContent = j.message; refresh(); }});
  }});
}})();
</script></body></html>
"""


class Dashboard:
    """The dashboard's Starlette application (``app``) over ``client``, and its sampler.

    ``start_sampling()`` reads the counters every ``sample_every`` seconds in a thread of
    its own (for the rates and the plot) until ``close()``.
    """

    def __init__(self, client: QueueClient, *, allow_actions: bool = False,
                 refresh: float = 5.0, sample_every: float = 10.0, database: str = "") -> None:
        self.client = client
        self.refresh = refresh
        self.sample_every = sample_every
        self.database = database
        self.allow_actions = allow_actions
        if allow_actions:
            rows = client.run(lambda conn: conn.execute(ADMIN_CHECK).fetchone(),
                              operation="admin check", idempotent=True)
            if not (rows and rows[0]):
                raise PgclaimError("pgclaim: --allow-actions needs a login that is a member "
                                   "of pgclaim_admin", sqlstate="42501")
        self.token = secrets.token_urlsafe(24)
        self.samples: collections.deque[Sample] = collections.deque(
            maxlen=int(3600 / max(sample_every, 0.1)) + 2)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.app = Starlette(routes=[
            Route("/", self.page),
            Route("/fragment", self.fragment),
            Route("/action", self.action, methods=["POST"]),
        ])

    # -- sampling ---------------------------------------------------------------------------

    def sample(self) -> Sample:
        """Reads the counters once and keeps them as a sample."""
        sample = Sample(time.time(), by_queue(self.client.metrics()))
        with self._lock:
            self.samples.append(sample)
        return sample

    def start_sampling(self) -> None:
        """Samples every ``sample_every`` seconds in a daemon thread."""
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.sample()
                except PgclaimError as exc:
                    log.warning("pgclaim dashboard: sampling failed: %s", exc)
                self._stop.wait(self.sample_every)
        self._thread = threading.Thread(target=loop, name="pgclaim-dashboard-sampler",
                                        daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stops the sampler."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    # -- rendering --------------------------------------------------------------------------

    def render(self) -> str:
        """The page's content: every section, as HTML."""
        now_sample = Sample(time.time(), by_queue(self.client.metrics()))
        with self._lock:
            samples = [*self.samples, now_sample]
        workers = self.client.workers()
        stuck = self.client.stuck_records(50)
        dead = self.client.dead_letters(max_records=20)
        return "".join([
            self._queues(now_sample, samples),
            "<h2>Throughput, last hour (per minute)</h2>",
            throughput_svg(samples, now_sample.at),
            self._workers(workers),
            self._stuck(stuck),
            self._dead(dead),
        ])

    def _queues(self, current: Sample, samples: Sequence[Sample]) -> str:
        head = ("<tr><th>queue</th><th>pending</th><th>scheduled</th><th>running</th>"
                "<th>oldest pending</th><th>completed</th><th>failures</th><th>dead letters"
                "</th><th>completed/min</th><th>failures/min</th><th>state</th>"
                + ("<th>actions</th>" if self.allow_actions else "") + "</tr>")
        rows = []
        for queue, m in sorted(current.by_queue.items()):
            paused = m.get("queue_paused", 0.0) >= 1
            cells = [
                f'<td class="text">{_e(queue)}</td>',
                f'<td class="pending">{_number(m.get("records:pending"))}</td>',
                f'<td class="scheduled">{_number(m.get("records:scheduled"))}</td>',
                f'<td class="running">{_number(m.get("records:running"))}</td>',
                f'<td>{_age(m.get("oldest_pending_age_seconds"))}</td>',
                f'<td class="completed">{_number(m.get("completions_total"))}</td>',
                f'<td class="failures">{_number(m.get("failures_total"))}</td>',
                f'<td class="dead">{_number(m.get("dead_letters_total"))}</td>',
                f'<td>{_number(rate_per_minute(samples, queue, "completions_total"))}</td>',
                f'<td>{_number(rate_per_minute(samples, queue, "failures_total"))}</td>',
                f'<td class="state">{"paused" if paused else "active"}</td>',
            ]
            if self.allow_actions:
                buttons = [_button("resume", "Resume", f"Resume queue {queue}?", queue=queue)
                           if paused else
                           _button("pause", "Pause", f"Pause queue {queue}?", queue=queue)]
                if m.get("dead_letters_total", 0.0) > 0:
                    buttons.append(_button(
                        "retry_failed", "Retry failed",
                        f"Put every failed record of queue {queue} back to pending?",
                        queue=queue))
                cells.append(f'<td class="text">{"".join(buttons)}</td>')
            rows.append(f'<tr data-queue="{_e(queue)}">{"".join(cells)}</tr>')
        body = "".join(rows) or '<tr><td class="muted">no queue</td></tr>'
        return f'<h2>Queues</h2><table id="queues">{head}{body}</table>'

    def _workers(self, workers: Sequence[Any]) -> str:
        rows = "".join(
            f'<tr><td>{_e(w.worker_id)}</td><td>{_e(w.last_seen.isoformat(timespec="seconds"))}'
            f'</td><td>{_age(w.silent_for)}</td><td class="{"" if w.alive else "bad"}">'
            f'{"alive" if w.alive else "dead"}</td><td>{w.held}</td></tr>' for w in workers)
        return ('<h2>Workers</h2><table id="workers"><tr><th>worker</th><th>last heartbeat</th>'
                '<th>silent for</th><th>state</th><th>holds</th></tr>'
                + (rows or '<tr><td class="muted">no worker</td></tr>') + "</table>")

    def _stuck(self, stuck: Sequence[Any]) -> str:
        rows = "".join(
            f'<tr><td>{r.id}</td><td class="text">{_e(r.queue)}</td><td class="text">'
            f'{_e(r.worker_id)}</td><td>{r.attempt}/{r.max_attempts}</td><td class="text">'
            f'{_e(r.reason)}</td><td>{_age(r.stuck_for)}</td>'
            + (f'<td>{_button("cancel", "Cancel", f"Cancel record {r.id}?", id=r.id)}</td>'
               if self.allow_actions else "") + "</tr>" for r in stuck)
        return ('<h2>Stuck records</h2><table id="stuck"><tr><th>id</th><th>queue</th>'
                '<th>worker</th><th>attempt</th><th>reason</th><th>stuck for</th>'
                + ("<th></th>" if self.allow_actions else "") + "</tr>"
                + (rows or '<tr><td class="muted">none</td></tr>') + "</table>")

    def _dead(self, dead: Sequence[Any]) -> str:
        rows = "".join(
            f'<tr><td>{d.id}</td><td class="text">{_e(d.queue)}</td><td>{d.attempt}/'
            f'{d.max_attempts}</td><td class="text">'
            f'{_e(d.finished_at.isoformat(timespec="seconds"))}</td>'
            f'<td class="error">{_e(d.last_error)}</td></tr>' for d in dead)
        return ('<h2>Recent failures (dead letters)</h2><table id="failures"><tr><th>id</th>'
                '<th>queue</th><th>attempt</th><th>failed at</th><th>error</th></tr>'
                + (rows or '<tr><td class="muted">none</td></tr>') + "</table>")

    # -- routes -----------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        """GET /: the whole page."""
        content = await self._threaded(self.render)
        note = (" &middot; <strong>admin actions on</strong>" if self.allow_actions
                else " &middot; read-only")
        return HTMLResponse(PAGE.format(
            token=self.token if self.allow_actions else "", refresh=_e(self.refresh),
            database=_e(self.database), when=time.strftime("%H:%M:%S"), content=content,
            actions_note=note), headers={"Cache-Control": "no-store"})

    async def fragment(self, request: Request) -> Response:
        """GET /fragment: the content alone, for the page's refresh."""
        return HTMLResponse(await self._threaded(self.render),
                            headers={"Cache-Control": "no-store"})

    async def action(self, request: Request) -> Response:
        """POST /action: one admin action, when allowed and the token matches."""
        if not self.allow_actions:
            return JSONResponse({"message": "actions are off (--allow-actions)"}, 403)
        if not secrets.compare_digest(request.headers.get("x-pgclaim-token", ""), self.token):
            return JSONResponse({"message": "missing or wrong token"}, 403)
        try:
            body = json.loads(await request.body())
            action, queue, record = body.get("action"), body.get("queue"), body.get("id")
        except (ValueError, AttributeError):
            return JSONResponse({"message": "the body must be a JSON object"}, 400)
        def pause() -> str:
            self.client.pause_queue(str(queue))
            return f"{queue} paused"

        def resume() -> str:
            self.client.resume_queue(str(queue))
            return f"{queue} resumed"

        calls: dict[str, Callable[[], str]] = {
            "retry_failed": lambda: f"{self.client.retry_failed(str(queue))} failed record(s) "
                                    f"of {queue} pending again",
            "cancel": lambda: f"{self.client.cancel([int(record)])} record(s) cancelled",
            "pause": pause,
            "resume": resume,
        }
        if action not in calls or (action == "cancel") == (record is None):
            return JSONResponse({"message": f"unknown action {action!r}"}, 400)
        try:
            message = await self._threaded(calls[action])
        except PgclaimError as exc:
            return JSONResponse({"message": str(exc), "sqlstate": exc.sqlstate}, 409)
        log.warning("pgclaim dashboard: %s", message)
        return JSONResponse({"message": message})

    @staticmethod
    async def _threaded(fn: Callable[[], Any]) -> Any:
        from starlette.concurrency import run_in_threadpool
        return await run_in_threadpool(fn)


def serve(dashboard: Dashboard, host: str, port: int,
          started: Callable[[str], None] | None = None) -> None:
    """Serves ``dashboard`` with uvicorn on host:port (0: any free port) until SIGTERM or
    SIGINT; ``started`` gets the URL once it listens."""
    import socket

    import uvicorn
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    class Server(uvicorn.Server):
        # SIGTERM and SIGINT end the serving gracefully and the process exits 0 (uvicorn
        # would raise the signal again once done); the first signal is graceful, a second
        # one does not wait for open connections.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            def graceful(_name: str) -> None:
                self.should_exit = True

            def now(_name: str) -> None:
                self.force_exit = True
            with StopSignals(graceful, now):
                yield

    server = Server(uvicorn.Config(dashboard.app, log_level="warning", access_log=False))
    dashboard.start_sampling()
    try:
        if started is not None:
            started(url)
        server.run(sockets=[sock])
    finally:
        dashboard.close()
        sock.close()
