"""Latency from the worker's epoch end to the browser's chart update.

The benchmark plays the Celery worker's part with the real reporting code
(``training.services.execution.RunReporter``: store the EpochMetric, then ``group_send`` to
``run-<id>`` through channels_redis), against a real web server process and real headless
Chromium pages on the run page. A script the benchmark adds to each page (the page itself
carries no measuring code) wraps the run socket's message handler and records ``now - at``
(``at``: when the worker ended the epoch; same machine, same clock) when a live epoch
arrives, once the page's handler has extended the charts, and on the next animation frame,
once the heatmap and recall bars are drawn too. Scenarios: 1 browser, then 20 browsers
watching one run. Prints JSON; also writes var/bench/chart_latency.json.

    python bench/chart_latency.py [--epochs 30] [--interval 0.5] [--browsers 1 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, machine, percentile, ravdess_labels  # noqa: E402
from bench.stack import LiveStack  # noqa: E402
from training.engine.events import EpochReport  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-renderer-backgrounding",
        "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows"]


# Added to every page before its own scripts: the run page's socket, as the page uses it
# (``ws.onmessage = ...``), gets a handler that times each live epoch around the page's own.
PAGE_TIMER = """
window.__bench = { arrivals: [], lines: [], full: [] };
const NativeSocket = window.WebSocket;
const onmessage = Object.getOwnPropertyDescriptor(NativeSocket.prototype, "onmessage");
window.WebSocket = class extends NativeSocket {
  set onmessage(handler) {
    onmessage.set.call(this, (event) => {
      const m = JSON.parse(event.data);
      const timed = m.type === "run.epoch" && !m.replay && m.at;
      const since = () => Date.now() / 1000 - m.at;
      if (timed) window.__bench.arrivals.push(since());
      handler(event);
      if (timed) {
        window.__bench.lines.push(since());
        requestAnimationFrame(() => window.__bench.full.push(since()));
      }
    });
  }
  get onmessage() { return onmessage.get.call(this); }
};
"""


def fake_epoch(epoch: int, epochs: int, labels: list[str]) -> EpochReport:
    n = len(labels)
    confusion = [[(5 if i == j else 1) for j in range(n)] for i in range(n)]
    return EpochReport(
        epoch=epoch, epochs=epochs, train_loss=1.0 / epoch, train_acc=0.5, val_loss=1.1 / epoch, wa=0.5,
        ua=0.4 + 0.01 * epoch, macro_f1=0.45, confusion=confusion, per_class_recall={label: 0.5 for label in labels},
        lr=1e-3, duration=1.0, is_best=True,
    )


class SocketWatchers:
    """``count`` plain websocket clients on the run page's socket (what a browser's socket
    receives, without a renderer), recording ``now - at`` for each live epoch."""

    def __init__(self, stack: LiveStack, run_id: int, count: int) -> None:
        self.stack, self.run_id, self.count = stack, run_id, count
        self.samples: list[float] = []
        self.ready = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self.main()), daemon=True)

    async def one(self, connected: list) -> None:
        from websockets.asyncio.client import connect

        uri = self.stack.url(f"/ws/runs/{self.run_id}/").replace("http://", "ws://")
        headers = {"Cookie": f"sessionid={self.stack.session_cookie}"}
        async with connect(uri, origin=self.stack.url("").rstrip("/"), additional_headers=headers, proxy=None) as ws:
            connected.append(1)
            if len(connected) == self.count:
                self.ready.set()
            while not self.done.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                msg = json.loads(text)
                if msg.get("type") == "run.epoch" and msg.get("at") and not msg.get("replay"):
                    self.samples.append(1000 * (time.time() - msg["at"]))

    async def main(self) -> None:
        connected: list = []
        await asyncio.gather(*(self.one(connected) for _ in range(self.count)))

    def __enter__(self) -> SocketWatchers:
        self.thread.start()
        if not self.ready.wait(30):
            raise RuntimeError("websocket watchers did not connect")
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(10)


def scenario(stack: LiveStack, browser, browsers: int, epochs: int, interval: float, sockets: int = 0) -> dict:
    from training.models import TrainingRun
    from training.services.execution import RunReporter

    labels = ravdess_labels()
    run = TrainingRun.objects.create(name=f"latency x{browsers}", labels=labels, status="running",
                                     hyperparameters={"train": {"epochs": epochs}})
    pages = []
    for _ in range(browsers):
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": stack.session_cookie, "url": stack.url("/")}])
        context.add_init_script(PAGE_TIMER)
        page = context.new_page()
        page.goto(stack.url(f"/runs/{run.pk}/"))
        page.wait_for_function("document.getElementById('live').textContent === 'live'", timeout=30000)
        pages.append(page)
    reporter = RunReporter(run)
    watchers = SocketWatchers(stack, run.pk, sockets) if sockets else None
    if watchers:
        watchers.__enter__()

    def worker() -> None:
        # A plain thread, as in a Celery worker: no event loop here.
        for epoch in range(1, epochs + 1):
            reporter(fake_epoch(epoch, epochs, labels))
            time.sleep(interval)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    if watchers:
        time.sleep(1)
        watchers.__exit__()
    deadline = time.monotonic() + 30
    samples: list[float] = []
    arrivals: list[float] = []
    full: list[float] = []
    for page in pages:
        while time.monotonic() < deadline and page.evaluate("window.__bench.full.length") < epochs:
            time.sleep(0.1)
        samples.extend(1000 * s for s in page.evaluate("window.__bench.lines"))
        arrivals.extend(1000 * s for s in page.evaluate("window.__bench.arrivals"))
        full.extend(1000 * s for s in page.evaluate("window.__bench.full"))
    points = [page.evaluate("document.getElementById('chart-acc').data[0].x.length") for page in pages]
    for page in pages:
        page.context.close()
    socket_samples = watchers.samples if watchers else []
    return {
        "browsers": browsers,
        "plain_websocket_watchers": sockets,
        "epochs_sent": epochs,
        "updates_received": len(samples),
        "updates_expected": epochs * browsers,
        "all_points_drawn": all(p == epochs for p in points),
        "median_ms": round(statistics.median(samples), 1) if samples else None,
        "p95_ms": round(percentile(samples, 0.95), 1) if samples else None,
        "max_ms": round(max(samples), 1) if samples else None,
        "message_arrival_median_ms": round(statistics.median(arrivals), 1) if arrivals else None,
        "message_arrival_p95_ms": round(percentile(arrivals, 0.95), 1) if arrivals else None,
        "with_heatmap_and_recall_median_ms": round(statistics.median(full), 1) if full else None,
        "with_heatmap_and_recall_p95_ms": round(percentile(full, 0.95), 1) if full else None,
        **({
            "socket_updates_received": len(socket_samples),
            "socket_updates_expected": epochs * sockets,
            "socket_arrival_median_ms": round(statistics.median(socket_samples), 1) if socket_samples else None,
            "socket_arrival_p95_ms": round(percentile(socket_samples, 0.95), 1) if socket_samples else None,
        } if sockets else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between epochs")
    parser.add_argument("--browsers", type=int, nargs="+", default=[1, 20],
                        help="scenarios of N real Chromium pages")
    parser.add_argument("--mixed", type=int, default=20,
                        help="also: 1 Chromium page + (N-1) plain websocket watchers (0 = skip)")
    options = parser.parse_args()
    import os

    # Playwright's sync API keeps an event loop in this thread; the Django calls here are
    # plain blocking ones, made between browser calls, never concurrently with them.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    results = []
    with LiveStack() as stack, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for n in options.browsers:
            results.append(scenario(stack, browser, n, options.epochs, options.interval))
        if options.mixed:
            results.append(scenario(stack, browser, 1, options.epochs, options.interval, sockets=options.mixed - 1))
        browser.close()
    report = {
        "benchmark": "chart_latency",
        "what": "worker epoch end (EpochMetric stored + group_send) -> Plotly chart extended in headless Chromium",
        "target": "p95 < 100 ms",
        "machine": machine(),
        "scenarios": results,
    }
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "chart_latency.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
