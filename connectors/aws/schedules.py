"""EventBridge Scheduler: one schedule per polling connector, kept in step with the registry by `onboard --aws`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from botocore.exceptions import ClientError

from gateway.errors import RetryableError
from gateway.onboarding import Schedule
from schemas.schedules import schedule_name


@dataclass(frozen=True)
class ScheduleAction:
    action: str  # created | updated | deleted
    name: str
    expression: str = ""

    def render(self) -> str:
        return f"schedule {self.name} {self.action}" + (f": {self.expression}" if self.expression else "")


class SchedulerSync:
    """Makes the group's `renkei-*` schedules that invoke `target_arn` exactly the desired ones.

    Syncs to the desired state (not to a diff), so running it again repairs drift, and a poller deployed
    after the first onboard gets its schedules on the next one. Schedules of other targets are left alone.
    """

    def __init__(self, client: Any, group: str, target_arn: str, role_arn: str, prefix: str = "renkei") -> None:
        self._client = client
        self._group = group
        self._target = target_arn
        self._role = role_arn
        self._prefix = prefix

    def name(self, connector_id: str) -> str:
        """`renkei-<connector id>`; an id too long for Scheduler keeps its start and gets a hash, to stay unique."""
        return schedule_name(connector_id, self._prefix)

    def sync(self, desired: Iterable[Schedule]) -> list[ScheduleAction]:
        """Create, update and delete schedules. Returns what it did. Raises RetryableError on an AWS failure."""
        wanted = {self.name(s.connector): s for s in desired}
        try:
            existing = self._existing()
            actions = [self._put(name, schedule, name in existing) for name, schedule in wanted.items()]
            for name in sorted(existing.keys() - wanted.keys()):
                self._client.delete_schedule(Name=name, GroupName=self._group)
                actions.append(ScheduleAction("deleted", name))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "unknown")
            raise RetryableError(f"scheduler sync failed: {code}") from exc
        return [a for a in actions if a.action]

    def _existing(self) -> dict[str, dict[str, Any]]:
        """Our schedules in the group: the `renkei-` ones whose target is our poller."""
        found: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {"GroupName": self._group, "NamePrefix": f"{self._prefix}-"}
        while True:
            page = self._client.list_schedules(**request)
            for summary in page.get("Schedules", []):
                if summary.get("Target", {}).get("Arn") == self._target:
                    found[summary["Name"]] = summary
            if not page.get("NextToken"):
                return found
            request["NextToken"] = page["NextToken"]

    def _put(self, name: str, schedule: Schedule, exists: bool) -> ScheduleAction:
        spec: dict[str, Any] = {
            "Name": name,
            "GroupName": self._group,
            "ScheduleExpression": schedule.expression,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {
                "Arn": self._target,
                "RoleArn": self._role,
                "Input": orjson.dumps({"connector": schedule.connector}).decode(),
            },
            "State": "ENABLED",
            "Description": f"Renkei: poll connector {schedule.connector} every {schedule.every}",
        }
        if not exists:
            self._client.create_schedule(**spec)
            return ScheduleAction("created", name, schedule.expression)
        held = self._client.get_schedule(Name=name, GroupName=self._group)
        if _same(held, spec):
            return ScheduleAction("", name)
        self._client.update_schedule(**spec)  # update replaces every field: hence the full spec
        return ScheduleAction("updated", name, schedule.expression)


def _same(held: dict[str, Any], spec: dict[str, Any]) -> bool:
    target = held.get("Target", {})
    return (
        held.get("ScheduleExpression") == spec["ScheduleExpression"]
        and held.get("State") == spec["State"]
        and target.get("RoleArn") == spec["Target"]["RoleArn"]
        and target.get("Input") == spec["Target"]["Input"]
    )
