"""Poller: started by a schedule (EventBridge Scheduler, input `{"connector": ID}`), reads the connector's source.

Feeds, TAXII collections, mailboxes and bundle URLs: each input goes through the pipeline (raw bytes to S3
first) and what routing allows is queued for delivery. The source keeps its cursor in the state table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from connectors.sources import source_for
from functions import wiring
from functions.context import time_left
from functions.messages import PollRequest
from functions.observability import count, logger, metrics, tracer
from functions.runs import expire_pending, run_intakes
from gateway.errors import NotOnboarded, SourceUnavailable

# Lambda's only writable folder: a relative `source` in the config means nothing there.
SOURCE_BASE = Path("/tmp")  # noqa: S108
EXPIRE_TASK = "expire-pending"  # the input of the stack's expiry schedule


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)  # never let tracing capture intel payloads
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Poll one connector. Returns the run summary (counts only); raises RetryableError for the schedule to retry.

    The same function expires approvals on its own schedule (`{"task": "expire-pending"}`).
    """
    if isinstance(event, dict) and event.get("task") == EXPIRE_TASK:
        expired = expire_pending(wiring.current())
        count("PendingExpired", len(expired))
        return {"status": "ok", "expired": len(expired)}
    try:
        request = PollRequest.model_validate(event)
    except ValidationError as exc:
        # A schedule with a wrong input repeats forever: say so, and do not ask for a retry.
        logger.error("not a poll request", errors=exc.error_count())
        count("PollsRejected", 1)
        return {"status": "invalid-event"}
    w = wiring.current()
    try:
        config, version = w.config()
    except NotOnboarded:
        # Every schedule would fill the dead-letter queue until someone onboards: say it once per poll instead.
        logger.error("nothing onboarded: run gateway onboard --aws")
        count("PollsRejected", 1)
        return {"status": "not-onboarded"}
    connector = config.connector(request.connector)
    if connector is None:
        logger.error(
            "unknown connector: its schedule outlived it; run gateway onboard --aws", connector=request.connector
        )
        count("PollsRejected", 1)
        return {"status": "unknown-connector", "connector": request.connector}
    logger.append_keys(connector=connector.id)
    try:
        source = source_for(config, connector, w.state, SOURCE_BASE)  # type: ignore[arg-type]
        result = run_intakes(w, config, version, connector.id, source.read(None), time_left(context))
    except SourceUnavailable as exc:
        # The source is down or misconfigured: the next scheduled poll tries again; the alarm is the metric.
        count("SourceUnavailable", 1, ("connector", connector.id))
        logger.warning("source unavailable", reason=str(exc)[:200])
        return {"status": "source-unavailable", "connector": connector.id}
    return {"status": "ok", "connector": connector.id, **result.summary()}
