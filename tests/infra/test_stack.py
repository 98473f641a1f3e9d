"""The stack's security and nothing-lost properties, checked on one synthesis with cdk-nag's AwsSolutions pack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Annotations, Match, Template

from infra.app import add_checks, build, config_path
from infra.code import RUNTIME_PACKAGES, dependencies_layer
from infra.constructs.functions import lambda_runtime
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
    # and a dependencies layer as `python -m infra.layer` leaves it (here: one stand-in module)
    layer = tmp_path_factory.mktemp("layer")
    (layer / "python").mkdir()
    (layer / "python" / "stand_in.py").write_text("")
    context = {
        **CDK_CONTEXT,
        "config": str(ROOT / "examples" / "gateway.yaml"),
        "renkei": {**CDK_CONTEXT["renkei"], "dependencies_layer": str(layer)},
    }
    app, stack = build(context, outdir=str(outdir))
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


def _invocation_dead_letter_ids(template: Template) -> set[str | None]:
    """Queues that Lambda (asynchronous invocations) and Scheduler (schedule targets) name as dead-letter queues."""
    ids = {
        _ref_id(f["Properties"]["DeadLetterConfig"]["TargetArn"])
        for f in _resources(template, "AWS::Lambda::Function").values()
        if "DeadLetterConfig" in f["Properties"]
    }
    ids |= {
        _ref_id(s["Properties"]["Target"]["DeadLetterConfig"]["Arn"])
        for s in _resources(template, "AWS::Scheduler::Schedule").values()
    }
    return ids


def test_every_working_queue_has_a_dead_letter_queue(stack: RenkeiStack, template: Template) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    dead_letters = _dead_letter_ids(queues)
    invocation_dead_letters = _invocation_dead_letter_ids(template)
    assert invocation_dead_letters == {_logical_id(stack, stack.queues.invocation_failures)}
    working = {
        logical_id: q
        for logical_id, q in queues.items()
        if logical_id not in dead_letters and logical_id not in invocation_dead_letters
    }
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
    for logical_id in _dead_letter_ids(queues) | _invocation_dead_letter_ids(template):
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
    for logical_id in _dead_letter_ids(_resources(template, "AWS::SQS::Queue")) | _invocation_dead_letter_ids(template):
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


# --- functions ---------------------------------------------------------------------------------------

HANDLERS = {
    "poller": "functions.poller.handler.lambda_handler",
    "mail_ingest": "functions.mail_ingest.handler.lambda_handler",
    "router": "functions.router.handler.lambda_handler",
    "deliver": "functions.deliver.handler.lambda_handler",
    "api": "functions.api.handler.lambda_handler",
}


def _functions(stack: RenkeiStack, template: Template) -> dict[str, dict[str, Any]]:
    """Each function's template resource, by function name (poller, deliver, ...)."""
    resources = _resources(template, "AWS::Lambda::Function")
    return {name: resources[_logical_id(stack, fn)] for name, fn in stack.functions.functions.items()}


def _policy_statements(template: Template, role_id: str) -> list[dict[str, Any]]:
    """Every statement of the identity policies attached to a role."""
    statements = []
    for policy in _resources(template, "AWS::IAM::Policy").values():
        if role_id in {_ref_id(r) for r in policy["Properties"]["Roles"]}:
            statements += _statements(policy["Properties"]["PolicyDocument"])
    return statements


def _allowed(template: Template, role_id: str, action: str) -> list[Any]:
    """The resources a role may perform `action` on."""
    return [
        resource
        for statement in _policy_statements(template, role_id)
        if statement["Effect"] == "Allow" and action in _as_list(statement["Action"])
        for resource in _as_list(statement["Resource"])
    ]


def _mentions(value: Any, logical_id: str) -> bool:
    return logical_id in json.dumps(value)


def test_one_function_per_handler_each_with_its_handler_path(stack: RenkeiStack, template: Template) -> None:
    functions = _functions(stack, template)
    assert set(functions) == set(HANDLERS)
    assert len(_resources(template, "AWS::Lambda::Function")) == len(HANDLERS)  # no helper functions
    for name, fn in functions.items():
        assert fn["Properties"]["Handler"] == HANDLERS[name]
        module = HANDLERS[name].rsplit(".", 1)[0].replace(".", "/") + ".py"
        # the API handler belongs to another package and may land later; the others are here
        assert name == "api" or (ROOT / module).is_file(), module


def test_function_environments_are_complete_and_point_at_the_right_resources(
    stack: RenkeiStack, template: Template
) -> None:
    from functions.wiring import Settings

    expected = {
        "RENKEI_STATE_TABLE": stack.tables.tables["state"],
        "RENKEI_REGISTRY_TABLE": stack.tables.tables["registry"],
        "RENKEI_OBJECTS_TABLE": stack.tables.tables["objects"],
        "RENKEI_RAW_BUCKET": stack.storage.raw,
        "RENKEI_QUARANTINE_BUCKET": stack.storage.quarantine,
        "RENKEI_ENVELOPES_QUEUE_URL": stack.queues.queues["envelopes"],
        "RENKEI_DELIVERIES_QUEUE_URL": stack.queues.queues["deliveries"],
    }
    # every setting the handlers require is set (functions.wiring.Settings reads them)
    assert Settings.env_names(required_only=True) <= set(expected)
    for name, fn in _functions(stack, template).items():
        env = fn["Properties"]["Environment"]["Variables"]
        for variable, construct in expected.items():
            assert _ref_id(env[variable]) == _logical_id(stack, construct), (name, variable)
        assert env["RENKEI_SECRETS_PATH"] == "/renkei/jp-cross-sector-hub/"
        assert env["POWERTOOLS_SERVICE_NAME"] == f"renkei-{name.replace('_', '-')}"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Renkei"
        # settings built from this environment validate: nothing required is missing
        Settings.from_env({k: v if isinstance(v, str) else "resolved" for k, v in env.items()})


def test_secrets_are_referenced_never_in_the_template(stack: RenkeiStack, template: Template) -> None:
    from functions.wiring import secret_names

    names = secret_names(stack.config)
    assert {"FIN_ISAC_TAXII_PASSWORD", "PARTNER_HUB_PUBLIC_KEY", "RENKEI_SIGNING_KEY"} <= names
    for fn in _functions(stack, template).values():
        assert not names & set(fn["Properties"]["Environment"]["Variables"])
    # the functions may read only this hub's SSM path
    for name, fn in _functions(stack, template).items():
        (path,) = _allowed(template, _ref_id(fn["Properties"]["Role"]) or "", "ssm:GetParameters")
        assert json.dumps(path).endswith(':parameter/renkei/jp-cross-sector-hub/*"]]}'), name


def test_functions_trace_without_capturing_payloads(stack: RenkeiStack, template: Template) -> None:
    for name, fn in _functions(stack, template).items():
        props = fn["Properties"]
        assert props["TracingConfig"] == {"Mode": "Active"}, name
        assert props["Environment"]["Variables"]["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false", name
        assert props["Environment"]["Variables"]["POWERTOOLS_TRACER_CAPTURE_ERROR"] == "false", name


def test_functions_run_the_runtime_packages_with_the_dependencies_layer(stack: RenkeiStack, template: Template) -> None:
    (layer_id,) = _resources(template, "AWS::Lambda::LayerVersion")
    for fn in _functions(stack, template).values():
        assert fn["Properties"]["Runtime"] == f"python{StackSettings().python_runtime}"
        assert [_ref_id(layer) for layer in fn["Properties"]["Layers"]] == [layer_id]


def test_the_code_asset_is_the_runtime_packages_only(
    stack: RenkeiStack, template: Template, synthesised: tuple[RenkeiStack, Template, Path]
) -> None:
    outdir = synthesised[2]
    keys = {fn["Properties"]["Code"]["S3Key"] for fn in _functions(stack, template).values()}
    assert len(keys) == 1  # one asset shared by every function
    (asset,) = [p for p in outdir.glob("asset.*") if (p / "functions").is_dir()]
    assert sorted(p.name for p in asset.iterdir()) == sorted(RUNTIME_PACKAGES)
    assert not list(asset.rglob("__pycache__"))
    assert (asset / "functions" / "deliver" / "handler.py").is_file()
    assert not (asset / "local").exists() and not (asset / "infra").exists()


def test_synth_without_the_dependencies_layer_warns_instead_of_failing(tmp_path: Path) -> None:
    stack = Stack(App(outdir=str(tmp_path)), "Bare")
    assert dependencies_layer(stack, str(tmp_path / "missing"), lambda_runtime(StackSettings())) is None
    warnings = Annotations.from_stack(stack).find_warning("*", Match.string_like_regexp(".*infra.layer.*"))
    assert len(warnings) == 1


def test_every_function_has_its_own_role_without_managed_policies(stack: RenkeiStack, template: Template) -> None:
    roles = _resources(template, "AWS::IAM::Role")
    used = [_ref_id(fn["Properties"]["Role"]) for fn in _functions(stack, template).values()]
    assert len(set(used)) == len(used)
    for role_id in used:
        assert "ManagedPolicyArns" not in roles[role_id]["Properties"], role_id


def test_every_sqs_event_source_reports_batch_item_failures(stack: RenkeiStack, template: Template) -> None:
    # Without it, a failed record makes Lambda retry the whole batch, or a caught failure deletes messages unseen.
    mappings = list(_resources(template, "AWS::Lambda::EventSourceMapping").values())
    assert mappings
    for mapping in mappings:
        assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    consumers = {
        (_ref_id(m["Properties"]["EventSourceArn"]), _ref_id(m["Properties"]["FunctionName"])) for m in mappings
    }
    fns = stack.functions.functions
    assert consumers == {
        (_logical_id(stack, stack.queues.queues["envelopes"]), _logical_id(stack, fns["router"])),
        (_logical_id(stack, stack.queues.queues["deliveries"]), _logical_id(stack, fns["deliver"])),
    }


def test_queue_visibility_outlasts_its_consumers_six_times(stack: RenkeiStack, template: Template) -> None:
    queues = _resources(template, "AWS::SQS::Queue")
    functions = _functions(stack, template)
    for queue_name, consumer in (("envelopes", "router"), ("deliveries", "deliver")):
        visibility = queues[_logical_id(stack, stack.queues.queues[queue_name])]["Properties"]["VisibilityTimeout"]
        assert visibility >= 6 * functions[consumer]["Properties"]["Timeout"]


def test_asynchronous_invocations_retry_then_keep_their_event(stack: RenkeiStack, template: Template) -> None:
    failures = _logical_id(stack, stack.queues.invocation_failures)
    configs = {
        _ref_id(c["Properties"]["FunctionName"]): c
        for c in _resources(template, "AWS::Lambda::EventInvokeConfig").values()
    }
    for name in ("poller", "mail_ingest"):
        fn = stack.functions.functions[name]
        props = _functions(stack, template)[name]["Properties"]
        assert _ref_id(props["DeadLetterConfig"]["TargetArn"]) == failures
        assert configs[_logical_id(stack, fn)]["Properties"]["MaximumRetryAttempts"] == 2
        role_id = _ref_id(props["Role"]) or ""
        assert [_ref_id(r) for r in _allowed(template, role_id, "sqs:SendMessage") if _mentions(r, failures)]


def test_least_privilege_per_function(stack: RenkeiStack, template: Template) -> None:
    roles = {name: _ref_id(fn["Properties"]["Role"]) or "" for name, fn in _functions(stack, template).items()}
    objects = _logical_id(stack, stack.tables.tables["objects"])
    registry = _logical_id(stack, stack.tables.tables["registry"])
    envelopes = _logical_id(stack, stack.queues.queues["envelopes"])
    raw = _logical_id(stack, stack.storage.raw)
    # nobody writes the registry: only `gateway onboard` does, with the operator's credentials
    for role_id in roles.values():
        for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"):
            assert not any(_mentions(r, registry) for r in _allowed(template, role_id, action))
    # only the deliverer (and the API, relaying feedback to a sender's own collection) writes the TAXII
    # collections, only the API reads them
    writers = {
        n for n, r in roles.items() if any(_mentions(x, objects) for x in _allowed(template, r, "dynamodb:PutItem"))
    }
    readers = {
        n for n, r in roles.items() if any(_mentions(x, objects) for x in _allowed(template, r, "dynamodb:Query"))
    }
    assert (writers, readers) == ({"deliver", "api"}, {"api"})
    # only the API sends envelopes (peer inbox, TAXII push); only the router consumes them
    senders = {
        n for n, r in roles.items() if any(_mentions(x, envelopes) for x in _allowed(template, r, "sqs:SendMessage"))
    }
    assert senders == {"api"}
    # the deliverer stores no raw input; mail ingest reads only mail/
    assert not [x for x in _allowed(template, roles["deliver"], "s3:PutObject") if _mentions(x, raw)]
    mail_reads = [json.dumps(x) for x in _allowed(template, roles["mail_ingest"], "s3:GetObject")]
    assert mail_reads and all(x.endswith('/mail/*"]]}') for x in mail_reads)


# --- schedules ---------------------------------------------------------------------------------------


def test_one_schedule_per_polling_connector_exactly_as_onboard_writes_them(
    stack: RenkeiStack, template: Template
) -> None:
    from connectors.aws.schedules import SchedulerSync
    from gateway.onboarding import schedules_of

    # Given what `gateway onboard --aws` would create for this config
    sync = SchedulerSync(client=None, group="g", target_arn="poller", role_arn="role")
    desired = {
        sync.name(s.connector): (s.expression, orjson.dumps({"connector": s.connector}).decode())
        for s in schedules_of(stack.config).values()
    }
    assert desired  # the example config has polling connectors
    # Then the stack's schedules have the same names, rates and inputs, so onboard finds them and keeps them
    every = _resources(template, "AWS::Scheduler::Schedule").values()
    schedules = [s for s in every if "GroupName" in s["Properties"]]
    got = {
        s["Properties"]["Name"]: (s["Properties"]["ScheduleExpression"], s["Properties"]["Target"]["Input"])
        for s in schedules
    }
    assert got == desired
    poller = _logical_id(stack, stack.functions.functions["poller"])
    role = stack.resolve(stack.schedules.role.node.default_child.logical_id)
    group = stack.resolve(stack.schedules.group_name)
    for schedule in schedules:
        props = schedule["Properties"]
        assert _ref_id(props["Target"]["Arn"]) == poller
        assert _ref_id(props["Target"]["RoleArn"]) == role
        assert props["GroupName"] == group
        assert props["Target"]["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    # and one more, outside the group that onboard owns: the poller expires approvals every 15 minutes
    [expiry] = [s["Properties"] for s in every if "GroupName" not in s["Properties"]]
    assert json.loads(expiry["Target"]["Input"]) == {"task": "expire-pending"}
    assert expiry["ScheduleExpression"] == "rate(15 minutes)" and _ref_id(expiry["Target"]["Arn"]) == poller


def test_the_scheduler_role_may_only_invoke_the_poller(stack: RenkeiStack, template: Template) -> None:
    role = stack.resolve(stack.schedules.role.node.default_child.logical_id)
    poller = _logical_id(stack, stack.functions.functions["poller"])
    assert [_ref_id(r) for r in _allowed(template, role, "lambda:InvokeFunction")] == [poller]
    trust = _resources(template, "AWS::IAM::Role")[role]["Properties"]["AssumeRolePolicyDocument"]
    (statement,) = _statements(trust)
    assert statement["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]


def test_onboard_finds_the_poller_and_the_scheduler_role_by_output(stack: RenkeiStack, template: Template) -> None:
    # connectors/aws/schedules.py via local/onboard.py reads these three outputs
    template.has_output(
        "PollerFunctionArn",
        {"Value": {"Fn::GetAtt": [_logical_id(stack, stack.functions.functions["poller"]), "Arn"]}},
    )
    template.has_output(
        "SchedulerRoleArn",
        {"Value": {"Fn::GetAtt": [stack.resolve(stack.schedules.role.node.default_child.logical_id), "Arn"]}},
    )
    template.has_output("ScheduleGroupName", {"Value": stack.resolve(stack.schedules.group_name)})
    assert {"ApiUrl", "InvocationFailuresQueueUrl", "SecretsPath", "ReceiptRuleSetName"} <= set(
        template.find_outputs("*")
    )


# --- mail --------------------------------------------------------------------------------------------


def test_each_mailbox_stores_mail_in_the_raw_bucket_then_starts_mail_ingest(
    stack: RenkeiStack, template: Template
) -> None:
    from functions.mail_ingest.handler import mail_key
    from schemas.config import EmailConnector

    mailboxes = [c for c in stack.config.connectors if isinstance(c, EmailConnector)]
    rules = [r["Properties"]["Rule"] for r in _resources(template, "AWS::SES::ReceiptRule").values()]
    assert len(rules) == len(mailboxes) >= 1
    ingest = _logical_id(stack, stack.functions.functions["mail_ingest"])
    for connector in mailboxes:
        (rule,) = [r for r in rules if r["Recipients"] == [connector.address]]
        store, start = rule["Actions"]  # in this order: the raw bytes are in S3 before anything else
        assert _ref_id(store["S3Action"]["BucketName"]) == _logical_id(stack, stack.storage.raw)
        # the handler finds the object where the rule puts it
        assert mail_key(connector.id, "MSGID") == store["S3Action"]["ObjectKeyPrefix"] + "MSGID"
        assert _ref_id(start["LambdaAction"]["FunctionArn"]) == ingest
        assert start["LambdaAction"]["InvocationType"] == "Event"
        assert rule["TlsPolicy"] == "Require" and rule["ScanEnabled"] is True


def test_ses_may_encrypt_stored_mail_with_the_data_key_for_this_account_only(template: Template) -> None:
    (key,) = _resources(template, "AWS::KMS::Key").values()
    (statement,) = [
        s for s in _statements(key["Properties"]["KeyPolicy"]) if s["Principal"] == {"Service": "ses.amazonaws.com"}
    ]
    assert _as_list(statement["Action"]) == ["kms:GenerateDataKey*"]
    assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]


# --- API ---------------------------------------------------------------------------------------------


def test_api_is_throttled_logged_and_behind_waf(stack: RenkeiStack, template: Template) -> None:
    (stage,) = _resources(template, "AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    (method_settings,) = props["MethodSettings"]
    assert method_settings["ThrottlingRateLimit"] == StackSettings().api_rate_limit
    assert method_settings["ThrottlingBurstLimit"] == StackSettings().api_burst_limit
    assert method_settings["DataTraceEnabled"] is False  # bodies are intel
    assert "$context.requestId" in props["AccessLogSetting"]["Format"]
    assert props["TracingEnabled"] is True
    (association,) = _resources(template, "AWS::WAFv2::WebACLAssociation").values()
    assert _ref_id(association["Properties"]["WebACLArn"]) == stack.resolve(stack.api.web_acl.logical_id)
    (acl,) = _resources(template, "AWS::WAFv2::WebACL").values()
    assert acl["Properties"]["VisibilityConfig"]["SampledRequestsEnabled"] is False
    assert any("RateBasedStatement" in r["Statement"] for r in acl["Properties"]["Rules"])
    # every route goes to the API function, which authenticates (TAXII Basic, peer signatures, approval tokens)
    api = _logical_id(stack, stack.functions.functions["api"])
    for method in _resources(template, "AWS::ApiGateway::Method").values():
        assert _mentions(method["Properties"]["Integration"]["Uri"], api)


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


def test_mail_may_be_sent_only_from_the_hubs_own_mail_domain(template: Template) -> None:
    statements = [
        s
        for policy in template.find_resources("AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "ses:SendRawEmail" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert len(statements) == 4  # the deliverer; mail ingest and the poller (approval requests); the API (feedback)
    for statement in statements:
        resources = json.dumps(statement["Resource"])
        assert "identity/hub.example.jp" in resources and "*" not in resources
