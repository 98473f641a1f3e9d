"""The stack's security and nothing-lost properties, checked on one synthesis with cdk-nag's AwsSolutions pack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Match, Template

from infra.app import add_checks, build, config_path
from infra.settings import StackSettings
from infra.stack import RenkeiStack
from schemas.tables import ALL_TABLES, STATE

pytestmark = pytest.mark.infra

ROOT = Path(__file__).resolve().parents[2]
# The flags `cdk synth` passes from cdk.json, so the test synthesises what a deploy would.
CDK_CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
DATA_SERVICES = ("dynamodb:", "s3:", "sqs:", "kms:", "sns:")


@pytest.fixture(scope="module")
def synthesised(tmp_path_factory: pytest.TempPathFactory) -> tuple[RenkeiStack, Template, Path]:
    # Given the app as `cdk synth` builds it, with the bundled example config
    outdir = tmp_path_factory.mktemp("cdk.out")
    app, stack = build({**CDK_CONTEXT, "config": str(ROOT / "examples" / "gateway.yaml")}, outdir=str(outdir))
    # When it is synthesised (cdk-nag v3 raises here on any unacknowledged finding)
    assembly = app.synth()
    template = Template.from_json(assembly.get_stack_artifact(stack.artifact_id).template)
    return stack, template, outdir


@pytest.fixture(scope="module")
def stack(synthesised: tuple[RenkeiStack, Template, Path]) -> RenkeiStack:
    return synthesised[0]


@pytest.fixture(scope="module")
def template(synthesised: tuple[RenkeiStack, Template, Path]) -> Template:
    return synthesised[1]


def _resources(template: Template, type_: str) -> dict[str, dict[str, Any]]:
    return template.find_resources(type_)


def _logical_id(stack: Stack, construct: Any) -> str:
    return stack.resolve(construct.node.default_child.logical_id)


def _ref_id(value: Any) -> str | None:
    """The logical id behind {"Ref": id} or {"Fn::GetAtt": [id, attr]}."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def _statements(policy_document: dict[str, Any]) -> list[dict[str, Any]]:
    return policy_document.get("Statement", [])


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _denies_plain_http(statements: list[dict[str, Any]]) -> bool:
    return any(
        s["Effect"] == "Deny" and s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        for s in statements
    )


# --- cdk-nag -----------------------------------------------------------------------------------------


def test_cdk_nag_reports_no_unacknowledged_finding(
    synthesised: tuple[RenkeiStack, Template, Path],
) -> None:
    # Given the synthesised app (synthesis itself would have raised on a finding)
    stack, _, outdir = synthesised
    # Then no AwsSolutions error is left as an annotation, and the validation report holds no violation
    assert Annotations.from_stack(stack).find_error("*", Match.string_like_regexp("AwsSolutions-.*")) == []
    report = json.loads((outdir / "validation-report.json").read_text())
    assert [r for r in report.get("pluginReports", []) if r.get("violations")] == []


def test_cdk_nag_is_wired_and_fails_synth_on_a_finding(tmp_path: Path) -> None:
    # Given a tiny app with the same checks and a bucket without access logs or TLS enforcement
    app = App(outdir=str(tmp_path))
    s3.Bucket(Stack(app, "Canary"), "Careless")
    add_checks(app)
    # When / Then synthesis refuses it: a clean stack above means the checks ran and passed
    with pytest.raises(RuntimeError, match=r"AwsSolutions-S10\b"):
        app.synth()


# --- tables ------------------------------------------------------------------------------------------


def test_one_table_per_spec(template: Template) -> None:
    template.resource_count_is("AWS::DynamoDB::Table", len(ALL_TABLES))


@pytest.mark.parametrize("spec", ALL_TABLES, ids=lambda spec: spec.logical_name)
def test_table_matches_its_spec_so_embedded_and_aws_cannot_drift(
    stack: RenkeiStack, template: Template, spec: Any
) -> None:
    # Given the table built from the spec
    table = _resources(template, "AWS::DynamoDB::Table")[_logical_id(stack, stack.tables.tables[spec.logical_name])]
    props = table["Properties"]
    # Then its keys, indexes and TTL are the spec's
    assert props["KeySchema"] == [
        {"AttributeName": spec.partition_key, "KeyType": "HASH"},
        {"AttributeName": spec.sort_key, "KeyType": "RANGE"},
    ]
    indexes = {
        gsi["IndexName"]: (gsi["KeySchema"], gsi["Projection"]["ProjectionType"])
        for gsi in props.get("GlobalSecondaryIndexes", [])
    }
    assert indexes == {
        index.name: (
            [
                {"AttributeName": index.partition_key, "KeyType": "HASH"},
                {"AttributeName": index.sort_key, "KeyType": "RANGE"},
            ],
            "ALL",
        )
        for index in spec.indexes
    }
    assert all(a["AttributeType"] == "S" for a in props["AttributeDefinitions"])
    if spec.ttl_attribute:
        assert props["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
    else:
        assert "TimeToLiveSpecification" not in props


def test_every_table_is_recoverable_encrypted_and_kept(stack: RenkeiStack, template: Template) -> None:
    key_id = _logical_id(stack, stack.data_key)
    for logical_id, table in _resources(template, "AWS::DynamoDB::Table").items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", logical_id
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, logical_id
        assert props["SSESpecification"]["SSEEnabled"] is True, logical_id
        assert props["SSESpecification"]["SSEType"] == "KMS", logical_id
        assert _ref_id(props["SSESpecification"]["KMSMasterKeyId"]) == key_id, logical_id
        assert props["DeletionProtectionEnabled"] is True, logical_id
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain", logical_id


def test_state_table_expires_entries_by_ttl(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {"TimeToLiveSpecification": {"AttributeName": STATE.ttl_attribute, "Enabled": True}},
    )


# --- key ---------------------------------------------------------------------------------------------


def test_data_key_rotates_and_is_kept(template: Template) -> None:
    keys = _resources(template, "AWS::KMS::Key")
    assert len(keys) == 1
    (key,) = keys.values()
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == "Retain"


def test_data_key_policy_grants_services_only_use_not_admin(template: Template) -> None:
    (key,) = _resources(template, "AWS::KMS::Key").values()
    for statement in _statements(key["Properties"]["KeyPolicy"]):
        if "Service" in statement["Principal"]:
            assert set(_as_list(statement["Action"])) <= {"kms:Decrypt", "kms:GenerateDataKey*"}


# --- queues ------------------------------------------------------------------------------------------


def _dead_letter_ids(queues: dict[str, dict[str, Any]]) -> set[str]:
    return {
        _ref_id(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }


def test_every_working_queue_has_a_dead_letter_queue(stack: RenkeiStack, template: Template) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    dead_letters = _dead_letter_ids(queues)
    working = {logical_id: q for logical_id, q in queues.items() if logical_id not in dead_letters}
    assert set(working) == {_logical_id(stack, q) for q in stack.queues.queues.values()}
    for logical_id, queue in working.items():
        redrive = queue["Properties"].get("RedrivePolicy")
        assert redrive, f"{logical_id} has no dead-letter queue"
        assert redrive["maxReceiveCount"] == StackSettings().max_receive_count
        assert _ref_id(redrive["deadLetterTargetArn"]) in queues
    # each working queue has its own dead-letter queue
    assert len(dead_letters) == len(working)


def test_dead_letters_are_kept_as_long_as_sqs_allows(template: Template) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    for logical_id in _dead_letter_ids(queues):
        assert queues[logical_id]["Properties"]["MessageRetentionPeriod"] == 14 * 86400


def test_every_queue_is_kms_encrypted_with_the_data_key(stack: RenkeiStack, template: Template) -> None:
    key_id = _logical_id(stack, stack.data_key)
    for logical_id, queue in _resources(template, "AWS::SQS::Queue").items():
        assert _ref_id(queue["Properties"].get("KmsMasterKeyId")) == key_id, logical_id


def test_every_queue_refuses_plain_http(template: Template) -> None:
    queues = set(_resources(template, "AWS::SQS::Queue"))
    protected = {
        _ref_id(ref)
        for policy in _resources(template, "AWS::SQS::QueuePolicy").values()
        if _denies_plain_http(_statements(policy["Properties"]["PolicyDocument"]))
        for ref in policy["Properties"]["Queues"]
    }
    assert queues <= protected


def _alarms_on(template: Template, metric: str) -> dict[str | None, dict[str, Any]]:
    """Alarms on an SQS metric, by the logical id of the queue they watch."""
    found = {}
    for alarm in _resources(template, "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("Namespace") == "AWS/SQS" and props.get("MetricName") == metric:
            (dimension,) = props["Dimensions"]
            found[_ref_id(dimension["Value"])] = props
    return found


def test_every_dead_letter_queue_alarms_on_its_first_message(template: Template) -> None:
    alarms = _alarms_on(template, "ApproximateNumberOfMessagesVisible")
    for logical_id in _dead_letter_ids(_resources(template, "AWS::SQS::Queue")):
        props = alarms.get(logical_id)
        assert props, f"no depth alarm on {logical_id}"
        assert props["Threshold"] == 0
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["AlarmActions"], "an alarm nobody hears"


def test_every_queue_alarms_on_the_age_of_its_oldest_message(template: Template) -> None:
    alarms = _alarms_on(template, "ApproximateAgeOfOldestMessage")
    for logical_id in _resources(template, "AWS::SQS::Queue"):
        assert logical_id in alarms, f"no age alarm on {logical_id}"
        assert alarms[logical_id]["AlarmActions"]


def test_alarm_topic_is_encrypted_and_tls_only(template: Template) -> None:
    (topic,) = _resources(template, "AWS::SNS::Topic").values()
    assert "KmsMasterKeyId" in topic["Properties"]
    (policy,) = _resources(template, "AWS::SNS::TopicPolicy").values()
    assert _denies_plain_http(_statements(policy["Properties"]["PolicyDocument"]))


# --- buckets -----------------------------------------------------------------------------------------


def test_every_bucket_blocks_public_access_is_encrypted_and_versioned(template: Template) -> None:
    for logical_id, bucket in _resources(template, "AWS::S3::Bucket").items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, logical_id
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"aws:kms", "AES256"}, logical_id
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}, logical_id
        assert bucket["DeletionPolicy"] == "Retain", logical_id


def test_every_bucket_has_a_tls_only_policy(template: Template) -> None:
    buckets = set(_resources(template, "AWS::S3::Bucket"))
    protected = {
        _ref_id(policy["Properties"]["Bucket"])
        for policy in _resources(template, "AWS::S3::BucketPolicy").values()
        if _denies_plain_http(_statements(policy["Properties"]["PolicyDocument"]))
    }
    assert buckets == protected


def test_data_buckets_use_the_data_key_and_log_access(stack: RenkeiStack, template: Template) -> None:
    buckets = _resources(template, "AWS::S3::Bucket")
    key_id = _logical_id(stack, stack.data_key)
    log_bucket = _logical_id(stack, stack.storage.access_logs)
    for bucket in (stack.storage.raw, stack.storage.quarantine):
        props = buckets[_logical_id(stack, bucket)]["Properties"]
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert _ref_id(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]) == key_id
        assert _ref_id(props["LoggingConfiguration"]["DestinationBucketName"]) == log_bucket


def _lifecycle(stack: RenkeiStack, template: Template, bucket: s3.Bucket) -> dict[str, dict[str, Any]]:
    props = _resources(template, "AWS::S3::Bucket")[_logical_id(stack, bucket)]["Properties"]
    return {rule["Id"]: rule for rule in props["LifecycleConfiguration"]["Rules"]}


def test_raw_inputs_expire_after_their_retention(stack: RenkeiStack, template: Template) -> None:
    rules = _lifecycle(stack, template, stack.storage.raw)
    assert rules["expire"]["ExpirationInDays"] == StackSettings().raw_retention_days


def test_quarantine_moves_to_infrequent_access_then_expires_later(stack: RenkeiStack, template: Template) -> None:
    rule = _lifecycle(stack, template, stack.storage.quarantine)["age-out"]
    (transition,) = rule["Transitions"]
    assert transition["StorageClass"] == "STANDARD_IA"
    assert rule["ExpirationInDays"] > transition["TransitionInDays"]
    assert rule["ExpirationInDays"] > StackSettings().raw_retention_days


# --- least privilege ---------------------------------------------------------------------------------


def _allow_statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Allow statement of an identity or resource policy (key policies apart: their "*" is the key)."""
    documents: list[tuple[str, dict[str, Any]]] = []
    for type_ in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for logical_id, res in _resources(template, type_).items():
            documents.append((logical_id, res["Properties"]["PolicyDocument"]))
    for logical_id, role in _resources(template, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            documents.append((logical_id, policy["PolicyDocument"]))
    for type_ in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
        for logical_id, res in _resources(template, type_).items():
            documents.append((logical_id, res["Properties"]["PolicyDocument"]))
    for logical_id, document in documents:
        for statement in _statements(document):
            if statement["Effect"] == "Allow":
                yield logical_id, statement


def test_no_policy_allows_everything_or_data_actions_on_every_resource(template: Template) -> None:
    for logical_id, statement in _allow_statements(template):
        actions = _as_list(statement.get("Action", []))
        assert "*" not in actions, logical_id
        assert not any(a.startswith(DATA_SERVICES) and a.endswith(":*") for a in actions), logical_id
        if any(a.startswith(DATA_SERVICES) for a in actions):
            assert "*" not in _as_list(statement.get("Resource", [])), logical_id


# --- outputs -----------------------------------------------------------------------------------------


def test_registry_table_is_found_by_its_output_name(stack: RenkeiStack, template: Template) -> None:
    # `gateway onboard` looks the registry table up by this output name: it is a contract.
    registry = _logical_id(stack, stack.tables.tables["registry"])
    template.has_output("RegistryTableName", {"Value": {"Ref": registry}})


def test_every_table_bucket_and_queue_is_an_output(template: Template) -> None:
    outputs = set(template.find_outputs("*"))
    expected = {f"{spec.logical_name.capitalize()}TableName" for spec in ALL_TABLES}
    expected |= {"RawBucketName", "QuarantineBucketName"}
    expected |= {f"{q}Queue{a}" for q in ("Envelopes", "Deliveries") for a in ("Name", "Url")}
    assert expected <= outputs


# --- app wiring (no synthesis) -----------------------------------------------------------------------


def test_config_comes_from_context_before_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENKEI_CONFIG", "from-env.yaml")
    assert config_path(App(context={"config": "from-context.yaml"})) == Path("from-context.yaml")
    assert config_path(App()) == Path("from-env.yaml")


def test_settings_accept_json_from_the_command_line() -> None:
    settings = StackSettings.from_context('{"raw_retention_days": 500}')
    assert settings.raw_retention_days == 500
    with pytest.raises(ValueError, match="quarantine_retention_days"):
        StackSettings.from_context({"quarantine_retention_days": 10})
