"""The Renkei stack: key, tables, buckets, queues and alarms, the functions, their API, schedules and mail."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from infra.code import dependencies_layer, runtime_code
from infra.constructs.alerts import Alerts
from infra.constructs.api import Api
from infra.constructs.encryption import DataKey
from infra.constructs.functions import POLLER, Functions, Resources, lambda_runtime
from infra.constructs.mail import InboundMail
from infra.constructs.queues import Queues
from infra.constructs.schedules import Schedules
from infra.constructs.storage import Storage
from infra.constructs.tables import StateTables
from infra.settings import StackSettings
from schemas import tables
from schemas.config import HubConfig


def stack_name_for(config: HubConfig) -> str:
    """`Renkei-<hub id>`, with the characters CloudFormation refuses in stack names made `-`."""
    return tables.stack_name_for(config.hub.id)


class RenkeiStack(Stack):
    """One hub's state. Output names are a contract: `gateway onboard` finds `RegistryTableName`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: HubConfig,
        settings: StackSettings,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, description=f"Renkei threat-intel gateway: hub {config.hub.id}", **kwargs)
        self.config = config
        self.settings = settings
        Tags.of(self).add("renkei:hub", config.hub.id)

        data_key = DataKey(self, "DataKey", prefix=settings.prefix)
        self.data_key = data_key.key
        self.alerts = Alerts(self, "Alerts", key=self.data_key)
        self.tables = StateTables(self, "Tables", key=self.data_key)
        self.storage = Storage(self, "Storage", key=self.data_key, settings=settings)
        self.queues = Queues(self, "Queues", key=self.data_key, alarm_topic=self.alerts.topic, settings=settings)
        # Secrets are SSM SecureString parameters named after the config's *_env names, under this path.
        self.secrets_path = f"/{settings.prefix}/{config.hub.id}/"
        self.functions = Functions(
            self,
            "Functions",
            resources=Resources(
                key=self.data_key,
                tables=self.tables.tables,
                raw=self.storage.raw,
                quarantine=self.storage.quarantine,
                queues=self.queues.queues,
                invocation_failures=self.queues.invocation_failures,
                secrets_path=self.secrets_path,
            ),
            settings=settings,
            code=runtime_code(),
            layer=dependencies_layer(self, settings.dependencies_layer, lambda_runtime(settings)),
            mail_domains=tuple(sorted({c.address.split("@", 1)[1] for c in config.connectors if c.type == "email"})),
        )
        poller = self.functions.functions[POLLER]
        self.api = Api(self, "Api", handler=self.functions.functions["api"], settings=settings)
        self.schedules = Schedules(
            self,
            "Schedules",
            config=config,
            poller=poller,
            failures=self.queues.invocation_failures,
            key=self.data_key,
            prefix=settings.prefix,
        )
        self.mail = InboundMail(
            self,
            "Mail",
            config=config,
            bucket=self.storage.raw,
            ingest=self.functions.functions["mail_ingest"],
            prefix=settings.prefix,
        )
        if self.mail.rules:
            data_key.allow_ses_to_store_mail(self.account)
        self._outputs()

    def _outputs(self) -> None:
        # Outputs sit on the stack itself so their logical ids are exactly these names.
        for logical_name, table in self.tables.tables.items():
            CfnOutput(self, f"{logical_name.capitalize()}TableName", value=table.table_name)
        for label, bucket in (("Raw", self.storage.raw), ("Quarantine", self.storage.quarantine)):
            CfnOutput(self, f"{label}BucketName", value=bucket.bucket_name)
        for name, queue in self.queues.queues.items():
            CfnOutput(self, f"{name.capitalize()}QueueName", value=queue.queue_name)
            CfnOutput(self, f"{name.capitalize()}QueueUrl", value=queue.queue_url)
        CfnOutput(self, "AlarmTopicArn", value=self.alerts.topic.topic_arn)
        CfnOutput(self, "DataKeyArn", value=self.data_key.key_arn)
        CfnOutput(self, "InvocationFailuresQueueUrl", value=self.queues.invocation_failures.queue_url)
        # `gateway onboard --aws` keeps the poll schedules in step with the registry through these three.
        CfnOutput(self, "PollerFunctionArn", value=self.functions.functions[POLLER].function_arn)
        CfnOutput(self, "SchedulerRoleArn", value=self.schedules.role.role_arn)
        CfnOutput(self, "ScheduleGroupName", value=self.schedules.group_name)
        for name, function in self.functions.functions.items():
            label = "".join(part.capitalize() for part in name.split("_"))
            CfnOutput(self, f"{label}FunctionName", value=function.function_name)
        CfnOutput(self, "ApiUrl", value=self.api.api.url)
        CfnOutput(self, "SecretsPath", value=self.secrets_path)
        if self.mail.rules:
            CfnOutput(self, "ReceiptRuleSetName", value=self.mail.rule_set.receipt_rule_set_name)
