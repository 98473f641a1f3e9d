"""Logger, Metrics and Tracer for every function: ids, counts and levels only, never intel content.

Metrics go out as CloudWatch embedded-metric-format lines in namespace `Renkei`: the totals of an invocation
(dimension `service`), and per connector (`connector`) or per destination (`destination`) with their own
dimension, so an operator can chart "objects in / delivered / withheld / quarantined" for each.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from gateway.pipeline import RunResult

NAMESPACE = "Renkei"
SERVICE = "renkei"

# POWERTOOLS_SERVICE_NAME (set per function by the stack) names the function in every line.
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)

# what a run counts (contract "Run summary"), as metric names
RUN_METRICS = {
    "objects": "ObjectsIn",
    "delivered": "ObjectsDelivered",
    "withheld": "ObjectsWithheld",
    "pending": "ObjectsPending",
    "quarantined": "ObjectsQuarantined",
    "duplicate": "ObjectsDuplicate",
}


def count(name: str, value: float, dimension: tuple[str, str] | None = None) -> None:
    """Add a count to this invocation's totals, and, with `dimension` (name, value), a metric of its own."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    if dimension is not None:
        defaults = metrics.default_dimensions
        with single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=value,
            namespace=NAMESPACE,
            default_dimensions=defaults,
        ) as metric:
            metric.add_dimension(name=dimension[0], value=dimension[1])


def record_run(connector: str, result: RunResult) -> dict[str, object]:
    """Count a pipeline run per connector and per destination; returns its summary (counts only) for the log."""
    summary = result.summary()
    for key, name in RUN_METRICS.items():
        if summary.get(key):
            count(name, summary[key], ("connector", connector))
    deliveries: Mapping[str, int] = summary["deliveries"]
    for destination, n in deliveries.items():
        count("DeliveriesQueued", n, ("destination", destination))
    for destination, n in summary.get("undelivered", {}).items():
        count("DeliveriesNotQueued", n, ("destination", destination))
    return summary
