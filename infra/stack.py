"""The Renkei stack: key, tables, buckets, queues and alarms; the functions come in later."""

from __future__ import annotations

import re
from typing import Any

from aws_cdk import CfnOutput, Stack, Tags
from constructs import Construct

from infra.constructs.alerts import Alerts
from infra.constructs.encryption import DataKey
from infra.constructs.queues import Queues
from infra.constructs.storage import Storage
from infra.constructs.tables import StateTables
from infra.settings import StackSettings
from schemas.config import HubConfig


def stack_name_for(config: HubConfig) -> str:
    """`Renkei-<hub id>`, with the characters CloudFormation refuses in stack names made `-`."""
    return "Renkei-" + re.sub(r"[^A-Za-z0-9-]", "-", config.hub.id)


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

        self.data_key = DataKey(self, "DataKey", prefix=settings.prefix).key
        self.alerts = Alerts(self, "Alerts", key=self.data_key)
        self.tables = StateTables(self, "Tables", key=self.data_key)
        self.storage = Storage(self, "Storage", key=self.data_key, settings=settings)
        self.queues = Queues(self, "Queues", key=self.data_key, alarm_topic=self.alerts.topic, settings=settings)
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
