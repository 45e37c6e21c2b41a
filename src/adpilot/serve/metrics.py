"""Prometheus text-format metrics for one server process: counters, gauges and latency histograms.

Small on purpose: a dict of label tuples per metric, guarded by one lock, rendered on ``GET /metrics``. Each worker
process exposes its own series (add the process label in the scrape config), as Prometheus expects.

>>> m = Metrics()
>>> m.requests.inc(("decide", "200"))
>>> m.latency.observe(("decide",), 0.0031)
>>> "adpilot_requests_total{route=\\"decide\\",status=\\"200\\"} 1.0" in m.render()
True
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable

# finer from 50 to 250 ms: where a paced overload's answers fall, and where OpenRTB's ``tmax`` (often 100 ms) sits
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.15, 0.2, 0.25, 0.5,
                   1.0)


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{v}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


class Counter:
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, labels
        self._values: dict[tuple[str, ...], float] = defaultdict(float)
        self._lock = threading.Lock()

    def inc(self, labels: tuple[str, ...] = (), amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] += amount

    def lines(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [f"{self.name}{_labels(self.label_names, k)} {v}" for k, v in items]


class Gauge:
    """A value read at scrape time from a callback returning ``{labels: value}``."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...],
                 read: Callable[[], dict[tuple[str, ...], float]]) -> None:
        self.name, self.help, self.label_names, self._read = name, help_text, labels, read

    def lines(self) -> list[str]:
        return [f"{self.name}{_labels(self.label_names, k)} {v}" for k, v in sorted(self._read().items())]


class Histogram:
    """Cumulative latency buckets per label set, in seconds."""

    kind = "histogram"

    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = (),
                 buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.help, self.label_names, self.buckets = name, help_text, labels, buckets
        self._counts: dict[tuple[str, ...], list[int]] = {}
        self._sums: dict[tuple[str, ...], float] = defaultdict(float)
        self._lock = threading.Lock()

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        index = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            counts = self._counts.setdefault(labels, [0] * (len(self.buckets) + 1))
            counts[index] += 1
            self._sums[labels] += seconds

    def lines(self) -> list[str]:
        out: list[str] = []
        with self._lock:
            items = sorted((k, list(v), self._sums[k]) for k, v in self._counts.items())
        for labels, counts, total in items:
            running = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                names, values = (*self.label_names, "le"), (*labels, le)
                out.append(f"{self.name}_bucket{_labels(names, values)} {running}")
            out.append(f"{self.name}_sum{_labels(self.label_names, labels)} {total}")
            out.append(f"{self.name}_count{_labels(self.label_names, labels)} {running}")
        return out


class Metrics:
    """The series one server exposes. Gauges for spend and budgets are attached by the app."""

    def __init__(self) -> None:
        self.requests = Counter("adpilot_requests_total", "HTTP requests by route and status.", ("route", "status"))
        self.latency = Histogram("adpilot_request_seconds", "Request latency by route.", ("route",))
        self.no_fill = Counter("adpilot_no_fill_total", "Ad requests answered without an ad, by reason.", ("reason",))
        self.shed = Counter("adpilot_shed_total", "Requests refused fast because the server was at capacity.",
                            ("route",))
        self.events = Counter("adpilot_events_total", "Tracking events by type and outcome.", ("type", "outcome"))
        self.gauges: list[Gauge] = []

    def render(self) -> str:
        """All series in the Prometheus text exposition format 0.0.4."""
        out: list[str] = []
        series: list[Counter | Histogram | Gauge] = [self.requests, self.latency, self.no_fill, self.shed,
                                                     self.events, *self.gauges]
        for metric in series:
            out.append(f"# HELP {metric.name} {metric.help}")
            out.append(f"# TYPE {metric.name} {metric.kind}")
            out.extend(metric.lines())
        return "\n".join(out) + "\n"
