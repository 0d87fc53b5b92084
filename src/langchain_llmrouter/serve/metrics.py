"""Prometheus metrics of ``llmrouter serve`` (one registry per app, so apps do not collide).

Each worker process counts its own requests; scrape every worker, or run one worker per
host behind the load balancer. Metric names:

* ``llmrouter_requests_total{router, status}``: requests answered, by router and HTTP status;
* ``llmrouter_fallbacks_total{router}``: answers that came from a fallback candidate;
* ``llmrouter_routed_total{router, candidate}``: answers per candidate (the routed share);
* ``llmrouter_estimated_dollars_total{router}`` / ``llmrouter_actual_dollars_total{router}``:
  the router's estimate for the chosen candidate, and every attempt's dollars from usage;
* ``llmrouter_routing_latency_seconds{router}``: the time a request spends outside candidate
  calls (routing, plus the server's own work);
* ``llmrouter_candidate_cooldown_seconds{candidate}``: seconds a candidate still cools down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_llmrouter._optional import import_optional

if TYPE_CHECKING:
    from collections.abc import Iterator

    from langchain_llmrouter.fallback import CandidateHealth

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text exposition format's content type."""


class ServerMetrics:
    """The server's counters and histograms, in a registry of their own."""

    def __init__(self, health: CandidateHealth) -> None:
        """Create the metrics; ``health`` feeds the cooldown gauge at scrape time."""
        prom = import_optional("prometheus_client", extra="serve", feature="llmrouter serve")
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.requests = prom.Counter(
            "llmrouter_requests", "Requests answered.", ["router", "status"], registry=r
        )
        self.fallbacks = prom.Counter(
            "llmrouter_fallbacks", "Answers from a fallback candidate.", ["router"], registry=r
        )
        self.routed = prom.Counter(
            "llmrouter_routed", "Answers per candidate.", ["router", "candidate"], registry=r
        )
        self.estimated = prom.Counter(
            "llmrouter_estimated_dollars",
            "The router's estimated dollars for the chosen candidates.",
            ["router"],
            registry=r,
        )
        self.actual = prom.Counter(
            "llmrouter_actual_dollars",
            "Dollars of every attempt, from the candidates' token usage.",
            ["router"],
            registry=r,
        )
        self.routing_latency = prom.Histogram(
            "llmrouter_routing_latency_seconds",
            "Time a request spends outside candidate calls (routing and the server's work).",
            ["router"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        r.register(_CooldownCollector(health, prom))

    def answered(self, router: str, routing: dict[str, Any], wall_s: float) -> None:
        """Count an answered request from its routing metadata."""
        self.requests.labels(router, "200").inc()
        self.routed.labels(router, str(routing.get("model"))).inc()
        if routing.get("fallback"):
            self.fallbacks.labels(router).inc()
        self.estimated.labels(router).inc(float(routing.get("est_cost") or 0.0))
        self.actual.labels(router).inc(spent(routing))
        attempts = routing.get("attempts") or []
        in_calls = sum(float(a.get("latency_s") or 0.0) for a in attempts)
        self.routing_latency.labels(router).observe(max(wall_s - in_calls, 0.0))

    def failed(self, router: str, status: int, dollars: float = 0.0) -> None:
        """Count a request answered with an error status."""
        self.requests.labels(router, str(status)).inc()
        if dollars:
            self.actual.labels(router).inc(dollars)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return bytes(self._prom.generate_latest(self.registry))


def spent(routing: dict[str, Any]) -> float:
    """A request's dollars: ``actual_cost``, else the router's ``est_cost``."""
    actual = routing.get("actual_cost")
    return float(actual if actual is not None else routing.get("est_cost") or 0.0)


class _CooldownCollector:
    """Reads the candidates' cooldowns when scraped."""

    def __init__(self, health: CandidateHealth, prom: Any) -> None:
        self.health = health
        self.prom = prom

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "llmrouter_candidate_cooldown_seconds",
            "Seconds a candidate still cools down after repeated failures.",
            labels=["candidate"],
        )
        for name, remaining in sorted(self.health.snapshot().items()):
            family.add_metric([name], remaining)
        yield family
