"""The Lambda functions, each with its own role, log group and only the permissions it needs.

Handlers are referenced by module path (functions/<name>/handler.py, `lambda_handler`); the code is the
runtime packages (infra/code.py). Every function gets the same `RENKEI_*` environment (functions.wiring.Settings
reads it); what differs is what its role may do with those resources.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.nag import acknowledge
from infra.settings import StackSettings

POLLER, MAIL_INGEST, ROUTER, DELIVER, API = "poller", "mail_ingest", "router", "deliver", "api"

DDB_READ = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
DDB_WRITE = [
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
]
# Tables, buckets and queues are encrypted with the data key: using them needs exactly these.
KMS_USE = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    description: str
    timeout_seconds: int


@dataclass(frozen=True)
class Resources:
    """What the functions use, built by the other constructs of the stack."""

    key: kms.IKey
    tables: dict[str, dynamodb.Table]
    raw: s3.Bucket
    quarantine: s3.Bucket
    queues: dict[str, sqs.Queue]
    invocation_failures: sqs.Queue
    secrets_path: str  # SSM path of this hub's secrets, e.g. /renkei/<hub>/


class Functions(Construct):
    """`functions[name]` for poller, mail_ingest, router, deliver and api."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        resources: Resources,
        settings: StackSettings,
        code: lambda_.Code,
        layer: lambda_.ILayerVersion | None,
        mail_domains: tuple[str, ...] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self._res = resources
        self._mail_domains = mail_domains
        self._settings = settings
        self.runtime = lambda_runtime(settings)
        timeout = settings.function_timeout_seconds
        specs = [
            FunctionSpec(
                POLLER, "Polls one connector's source (started by its schedule)", settings.poller_timeout_seconds
            ),
            FunctionSpec(MAIL_INGEST, "Takes a mail that an SES receipt rule stored in the raw bucket", timeout),
            FunctionSpec(ROUTER, "Routes envelopes (raw inputs in S3) into delivery tasks", timeout),
            FunctionSpec(DELIVER, "Checks the policy again and delivers each task on its channels", timeout),
            FunctionSpec(API, "TAXII 2.1 server, peer inbox and approvals behind API Gateway", 29),
        ]
        self.functions: dict[str, lambda_.Function] = {s.name: self._function(s, code, layer) for s in specs}
        self._permissions()
        self._event_sources()
        self._async_failures()

    # --- the functions -------------------------------------------------------------------------------

    def environment(self, name: str) -> dict[str, str]:
        res = self._res
        return {
            "RENKEI_STATE_TABLE": res.tables["state"].table_name,
            "RENKEI_REGISTRY_TABLE": res.tables["registry"].table_name,
            "RENKEI_OBJECTS_TABLE": res.tables["objects"].table_name,
            "RENKEI_RAW_BUCKET": res.raw.bucket_name,
            "RENKEI_QUARANTINE_BUCKET": res.quarantine.bucket_name,
            "RENKEI_ENVELOPES_QUEUE_URL": res.queues["envelopes"].queue_url,
            "RENKEI_DELIVERIES_QUEUE_URL": res.queues["deliveries"].queue_url,
            "RENKEI_SECRETS_PATH": res.secrets_path,
            "POWERTOOLS_SERVICE_NAME": f"renkei-{name.replace('_', '-')}",
            "POWERTOOLS_METRICS_NAMESPACE": "Renkei",
            "POWERTOOLS_LOG_LEVEL": "INFO",
            # Payloads are intel: neither responses nor exception texts go into traces.
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            "POWERTOOLS_TRACER_CAPTURE_ERROR": "false",
        }

    def _function(
        self, spec: FunctionSpec, code: lambda_.Code, layer: lambda_.ILayerVersion | None
    ) -> lambda_.Function:
        label = "".join(part.capitalize() for part in spec.name.split("_"))
        log_group = logs.LogGroup(
            self,
            f"{label}Logs",
            retention=_retention(self._settings.log_retention_days),
            # Logs carry ids and counts, no intel; they are evidence of what was routed, so kept with the stack gone.
            removal_policy=RemovalPolicy.RETAIN,
        )
        # A role per function with nothing managed attached: every permission is listed in _permissions.
        role = iam.Role(
            self,
            f"{label}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Renkei {spec.name} function",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
            )
        )
        function = lambda_.Function(
            self,
            label,
            runtime=self.runtime,
            architecture=lambda_.Architecture.ARM_64,
            code=code,
            handler=f"functions.{spec.name}.handler.lambda_handler",
            description=f"Renkei: {spec.description}",
            memory_size=self._settings.function_memory_mb,
            timeout=Duration.seconds(spec.timeout_seconds),
            environment=self.environment(spec.name),
            layers=[layer] if layer is not None else None,
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
        )
        # X-Ray's PutTraceSegments / PutTelemetryRecords have no resource-level permissions: "*" is the only form.
        acknowledge(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level permissions",
        )
        return function

    # --- least privilege -----------------------------------------------------------------------------

    def _allow(self, name: str, actions: list[str], resources: list[str]) -> None:
        self.functions[name].add_to_role_policy(iam.PolicyStatement(actions=actions, resources=resources))

    def _permissions(self) -> None:
        res = self._res
        state, registry, objects = (res.tables[n] for n in ("state", "registry", "objects"))
        secrets = Stack.of(self).format_arn(
            service="ssm", resource="parameter", resource_name=res.secrets_path.strip("/") + "/*"
        )
        raw_inputs = res.raw.arn_for_objects("raw/*")
        quarantined = res.quarantine.arn_for_objects("quarantine/*")
        large_bundles = res.raw.arn_for_objects("deliveries/*")
        self._acknowledge_prefixes(
            {
                POLLER: [res.raw, res.quarantine],
                MAIL_INGEST: [res.raw, res.quarantine],
                ROUTER: [res.raw, res.quarantine],
                DELIVER: [res.raw],
                API: [res.raw, res.quarantine],
            }
        )
        for name in self.functions:
            self._allow(name, KMS_USE, [res.key.key_arn])
            # Only this hub's secrets, and only reading them: the names come from the config at run time.
            self._allow(name, ["ssm:GetParameters"], [secrets])
            self._allow(name, DDB_READ, [registry.table_arn])
            self._allow(name, [*DDB_READ, *DDB_WRITE], [state.table_arn])
        for name in (POLLER, MAIL_INGEST, ROUTER, API):  # run the pipeline: store raw, quarantine, queue deliveries
            self._allow(name, ["s3:PutObject"], [raw_inputs, quarantined, large_bundles])
            self._allow(name, ["sqs:SendMessage"], [res.queues["deliveries"].queue_arn])
        self._allow(MAIL_INGEST, ["s3:GetObject"], [res.raw.arn_for_objects("mail/*")])
        self._allow(ROUTER, ["s3:GetObject"], [raw_inputs])
        self._allow(DELIVER, ["s3:GetObject"], [large_bundles])
        # Deliveries to `pull` collections (UpdateItem keeps each object's first/last versions); the API relays
        # feedback back to a sender whose own system may be such a collection, or a reporter's mailbox.
        collection_writes = ["dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem"]
        self._allow(DELIVER, collection_writes, [objects.table_arn])
        self._allow(API, collection_writes, [objects.table_arn])
        if self._mail_domains:  # mail goes out from the hub's own mail domains only
            identities = [
                Stack.of(self).format_arn(service="ses", resource="identity", resource_name=domain)
                for domain in self._mail_domains
            ]
            # deliveries; approval requests to reporting members; feedback to them
            for name in (DELIVER, MAIL_INGEST, POLLER, API):
                self._allow(name, ["ses:SendRawEmail"], identities)
        self._allow(API, ["s3:GetObject"], [raw_inputs])
        self._allow(API, ["sqs:SendMessage"], [res.queues["envelopes"].queue_arn])
        self._allow(API, DDB_READ, [objects.table_arn, f"{objects.table_arn}/index/by-date-added"])

    def _acknowledge_prefixes(self, buckets: dict[str, list[s3.Bucket]]) -> None:
        """The object-key and parameter-name wildcards, each acknowledged by name on the one policy that has it."""
        stack = Stack.of(self)
        reason = (
            "Keys under this prefix are content hashes, dates and ids chosen at run time; the wildcard is one "
            "prefix of one bucket (raw/, quarantine/, deliveries/, mail/) and the actions are listed one by one"
        )
        prefixes = {"raw": ("raw", "deliveries", "mail"), "quarantine": ("quarantine",)}
        secrets = (
            "arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/"
            + self._res.secrets_path.strip("/")
            + "/*"
        )
        for name, function in self.functions.items():
            policy = function.role.node.find_child("DefaultPolicy")  # type: ignore[union-attr]
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{secrets}]",
                "Only this hub's SSM path, read only: the parameter names are the *_env names of the config, "
                "which change with onboarding and not with a deploy",
            )
            for bucket in buckets[name]:
                logical_id = stack.resolve(stack.get_logical_id(bucket.node.default_child))  # type: ignore[arg-type]
                area = "raw" if bucket is self._res.raw else "quarantine"
                for prefix in prefixes[area]:
                    acknowledge(policy, f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}/*]", reason)

    def _event_sources(self) -> None:
        # Without ReportBatchItemFailures a failed record would make Lambda retry the batch or, worse, a
        # handler that catches would let SQS delete messages that were never processed.
        s = self._settings
        for name, queue, batch in (
            (ROUTER, self._res.queues["envelopes"], s.router_batch_size),
            (DELIVER, self._res.queues["deliveries"], s.deliver_batch_size),
        ):
            self.functions[name].add_event_source(
                sources.SqsEventSource(
                    queue,
                    batch_size=batch,
                    report_batch_item_failures=True,
                    max_batching_window=Duration.seconds(1) if batch > 1 else None,
                )
            )

    def _async_failures(self) -> None:
        """Events that SES and the schedules hand over asynchronously, and that fail every retry, are kept."""
        queue = self._res.invocation_failures
        for name in (POLLER, MAIL_INGEST):
            function = self.functions[name]
            # Set on the resource (not `dead_letter_queue=`), whose grant would add wildcard KMS actions.
            function.node.default_child.add_property_override(  # type: ignore[union-attr]
                "DeadLetterConfig", {"TargetArn": queue.queue_arn}
            )
            self._allow(name, ["sqs:SendMessage"], [queue.queue_arn])
            function.configure_async_invoke(retry_attempts=2, max_event_age=Duration.hours(6))


def lambda_runtime(settings: StackSettings) -> lambda_.Runtime:
    return lambda_.Runtime(f"python{settings.python_runtime}", lambda_.RuntimeFamily.PYTHON)


_RETENTIONS = [
    (1, "ONE_DAY"), (3, "THREE_DAYS"), (5, "FIVE_DAYS"), (7, "ONE_WEEK"), (14, "TWO_WEEKS"), (30, "ONE_MONTH"),
    (60, "TWO_MONTHS"), (90, "THREE_MONTHS"), (120, "FOUR_MONTHS"), (150, "FIVE_MONTHS"), (180, "SIX_MONTHS"),
    (365, "ONE_YEAR"), (400, "THIRTEEN_MONTHS"), (545, "EIGHTEEN_MONTHS"), (731, "TWO_YEARS"),
    (1096, "THREE_YEARS"), (1827, "FIVE_YEARS"), (2192, "SIX_YEARS"), (2557, "SEVEN_YEARS"),
    (2922, "EIGHT_YEARS"), (3288, "NINE_YEARS"), (3653, "TEN_YEARS"),
]  # fmt: skip


def _retention(days: int) -> logs.RetentionDays:
    """The shortest retention CloudWatch offers that keeps logs at least `days`."""
    name = next((name for offered, name in _RETENTIONS if offered >= days), "INFINITE")
    return getattr(logs.RetentionDays, name)  # type: ignore[no-any-return]
