"""A hub with no mailbox and no polling connector still synthesises cleanly: the optional parts are left out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.app import build

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
CDK_CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
MINIMAL = """
hub: {id: tiny-hub}
communities:
  - {id: members, kind: isac, deliver: [{pull: {}}]}
connectors:
  - {id: drop, type: stix, source: ./inbox/, sender: {org: Analysts}}
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    folder = tmp_path_factory.mktemp("minimal")
    (folder / "hub.yaml").write_text(MINIMAL)
    (folder / "layer" / "python").mkdir(parents=True)
    context = {
        **CDK_CONTEXT,
        "config": str(folder / "hub.yaml"),
        "renkei": {**CDK_CONTEXT["renkei"], "dependencies_layer": str(folder / "layer")},
    }
    app, stack = build(context, outdir=str(folder / "cdk.out"))
    return Template.from_json(app.synth().get_stack_artifact(stack.artifact_id).template)  # cdk-nag raises here


def test_no_mailbox_means_no_receipt_rules_and_no_ses_access_to_the_key(template: Template) -> None:
    template.resource_count_is("AWS::SES::ReceiptRuleSet", 0)
    template.resource_count_is("AWS::SES::ReceiptRule", 0)
    (key,) = template.find_resources("AWS::KMS::Key").values()
    principals = [s["Principal"] for s in key["Properties"]["KeyPolicy"]["Statement"]]
    assert {"Service": "ses.amazonaws.com"} not in principals
    assert "ReceiptRuleSetName" not in template.find_outputs("*")


def test_no_polling_connector_means_no_poll_schedules_but_onboard_can_still_add_them(template: Template) -> None:
    schedules = template.find_resources("AWS::Scheduler::Schedule")
    # only the approval expiry, outside the group of poll schedules that onboard owns
    assert [s["Properties"].get("GroupName") for s in schedules.values()] == [None]
    outputs = template.find_outputs("*")
    assert {"PollerFunctionArn", "SchedulerRoleArn", "ScheduleGroupName"} <= set(outputs)
    template.resource_count_is("AWS::Lambda::Function", 5)
