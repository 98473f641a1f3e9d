"""SQS queues between the functions, each with a dead-letter queue and alarms, so nothing is lost unseen."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.nag import acknowledge
from infra.settings import StackSettings

# envelopes: inputs on their way through the pipeline; deliveries: routed objects on their way out
ENVELOPES = "envelopes"
DELIVERIES = "deliveries"
QUEUE_NAMES: tuple[str, ...] = (ENVELOPES, DELIVERIES)


class Queues(Construct):
    """The `envelopes` and `deliveries` queues; `queues[name]` and `dead_letters[name]`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        alarm_topic: sns.ITopic,
        settings: StackSettings,
    ) -> None:
        super().__init__(scope, construct_id)
        self._action = actions.SnsAction(alarm_topic)
        self.queues: dict[str, sqs.Queue] = {}
        self.dead_letters: dict[str, sqs.Queue] = {}
        for name in QUEUE_NAMES:
            self._add(name, key, settings)
        # Asynchronous invocations (SES -> mail ingest, schedules -> poller) that failed every retry.
        self.invocation_failures = self._dead_letter_queue("InvocationFailures", key, settings)
        self._watch_dead_letters("InvocationFailures", "failed invocations", self.invocation_failures, settings)
        acknowledge(
            self.invocation_failures,
            "AwsSolutions-SQS3",
            "This queue is itself a dead-letter queue: Lambda's for asynchronous invocations and Scheduler's for "
            "schedule targets, which name it directly rather than through a redrive policy",
        )

    def _add(self, name: str, key: kms.IKey, settings: StackSettings) -> None:
        label = name.capitalize()
        dlq = self._dead_letter_queue(f"{label}DeadLetters", key, settings)
        queue = sqs.Queue(
            self,
            label,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            # Reusing a data key for up to an hour keeps KMS calls (and cost) off the per-message path.
            data_key_reuse=Duration.hours(1),
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(settings.visibility_timeout_seconds),
            retention_period=Duration.days(settings.queue_retention_days),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=settings.max_receive_count),
        )
        self.queues[name] = queue
        self.dead_letters[name] = dlq

        self._watch_dead_letters(f"{label}DeadLetters", name, dlq, settings)
        # A working queue that stops draining means a stuck or failing consumer.
        self._alarm(
            f"{label}Stalled",
            queue.metric_approximate_age_of_oldest_message(period=Duration.minutes(1), statistic="Maximum"),
            threshold=settings.oldest_message_alarm_seconds,
            description=f"The {name} queue is not draining: check its consumer.",
        )

    def _dead_letter_queue(self, construct_id: str, key: kms.IKey, settings: StackSettings) -> sqs.Queue:
        return sqs.Queue(
            self,
            construct_id,
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
            retention_period=Duration.days(settings.dlq_retention_days),
        )

    def _watch_dead_letters(self, label: str, name: str, dlq: sqs.Queue, settings: StackSettings) -> None:
        # A single dead letter is an input or a delivery that did not happen: page on the first one.
        self._alarm(
            f"{label}Visible",
            dlq.metric_approximate_number_of_messages_visible(period=Duration.minutes(1), statistic="Maximum"),
            threshold=0,
            description=f"Messages in the {name} dead-letter queue: inspect and redrive them.",
        )
        # Dead letters expire at retention: warn while a redrive is still possible.
        self._alarm(
            f"{label}Ageing",
            dlq.metric_approximate_age_of_oldest_message(period=Duration.minutes(5), statistic="Maximum"),
            threshold=Duration.days(settings.dlq_oldest_message_alarm_days).to_seconds(),
            description=f"The oldest {name} dead letter will expire soon: redrive it or save it.",
        )

    def _alarm(self, alarm_id: str, metric: cloudwatch.IMetric, *, threshold: float, description: str) -> None:
        alarm = cloudwatch.Alarm(
            self,
            alarm_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            # SQS stops publishing metrics for a queue idle for six hours: no data means nothing waits.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
