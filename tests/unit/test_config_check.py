"""`gateway check` and `gateway schema`: every problem of a hub config, each with its line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ruamel.yaml import YAML

from local.config_file import (
    ConfigError,
    ConfigInvalid,
    check_file,
    config_json_schema,
    load_config,
    load_config_or_raise,
)
from schemas.checks import semantic_problems
from schemas.config import HubConfig

EXAMPLE = Path(__file__).parents[2] / "examples" / "gateway.example.yaml"
EXAMPLE_SECRETS = (
    "RENKEI_SIGNING_KEY",
    "FIN_ISAC_TAXII_PASSWORD",
    "POWER_CO_1_TAXII_PASSWORD",
    "PARTNER_HUB_PUBLIC_KEY",
)


def _private_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _public_pem() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def example_env() -> dict[str, str]:
    return {
        "RENKEI_SIGNING_KEY": _private_pem(),
        "FIN_ISAC_TAXII_PASSWORD": "s3cret",
        "POWER_CO_1_TAXII_PASSWORD": "s3cret-too",
        "PARTNER_HUB_PUBLIC_KEY": _public_pem(),
    }


def write(tmp_path: Path, text: str) -> Path:
    """The config file; `text` starts on line 1 (write it right after the opening quotes and a backslash)."""
    path = tmp_path / "gateway.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def lines(errors: list[ConfigError]) -> list[int]:
    return [error.line for error in errors]


def only(errors: list[ConfigError]) -> ConfigError:
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def line_of(path: Path, needle: str) -> int:
    """The 1-based line where `needle` first appears."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


MINIMAL_HUB = """\
hub: {id: hub-1}
communities:
  - {id: finance-isac, kind: isac, deliver: [pull: {}]}
  - {id: bank-b, kind: organization, deliver: [pull: {}]}
"""


# --- the example ----------------------------------------------------------------------------------------


def test_example_config_is_valid_when_its_secrets_are_set(example_env: dict[str, str]) -> None:
    # Given the bundled example and an environment holding every secret it names
    # When it is checked
    errors = check_file(EXAMPLE, env=example_env)
    # Then nothing is wrong
    assert errors == []


def test_example_config_names_each_unset_secret_at_its_line() -> None:
    # Given the bundled example and an environment without its secrets
    # When it is checked
    errors = check_file(EXAMPLE, env={})
    # Then each variable is reported once, at the line that first names it, saying what it must hold
    assert [(e.line, e.message.split(": ", 1)[1].split()[2]) for e in errors] == [
        (line_of(EXAMPLE, name), name) for name in EXAMPLE_SECRETS
    ]
    assert all("is not set: it must hold" in e.message for e in errors)
    assert "PEM" in errors[0].message


def test_a_key_that_is_not_pem_is_reported(example_env: dict[str, str]) -> None:
    # Given the example with a private key where the peer's public key belongs
    env = {**example_env, "PARTNER_HUB_PUBLIC_KEY": _private_pem()}
    # When it is checked
    error = only(check_file(EXAMPLE, env=env))
    # Then the variable is named, with what it must hold
    assert "PARTNER_HUB_PUBLIC_KEY does not hold a PEM public key" in error.message
    assert error.line == line_of(EXAMPLE, "PARTNER_HUB_PUBLIC_KEY")


def test_loading_to_run_does_not_need_the_secrets() -> None:
    # Given the example and no secrets in this shell
    # When it is loaded to run (ingest), not checked
    config, errors = load_config(EXAMPLE, check_env=False)
    # Then it loads, without errors
    assert errors == []
    assert config is not None
    assert len(config.connectors) == 5
    assert load_config_or_raise(EXAMPLE).hub.id == "jp-cross-sector-hub"


# --- every error, each with its line ---------------------------------------------------------------------


def test_every_error_of_a_file_is_reported_with_its_line(tmp_path: Path) -> None:
    # Given a file with several different structural errors on known lines
    path = write(
        tmp_path,
        """\
        hub:
          id: hub-1
          colour: blue
        communities:
          - id: finance-isac
            kind: isacs
            deliver:
              - pull: {}
          - id: fsa
            kind: regulator
            deliver: []
        connectors:
          - id: feed-1
            type: rss
          - id: drop
            type: stix
            tlp: BLUE
            every: soon
        """,
    )
    # When it is checked
    errors = check_file(path, env={})
    # Then every one is reported, in line order, as FILE:LINE: message
    assert lines(errors) == [3, 6, 11, 13, 17, 18]
    assert str(errors[0]) == f"{path}:3: hub: unknown field 'colour' (allowed: " + (
        "id, name, signing_key_env, seal_key_env, remote, approval_expires_after)"
    )
    assert "unknown kind 'isacs'" in errors[1].message
    assert "communities[1].deliver: needs at least 1 item" in errors[2].message
    assert "unknown connector type 'rss'" in errors[3].message
    assert "not a TLP level: 'BLUE' (CLEAR, GREEN, AMBER, AMBER+STRICT, RED)" in errors[4].message
    assert "not a duration: 'soon'" in errors[5].message


def test_semantic_errors_are_all_reported_with_their_lines(tmp_path: Path) -> None:
    # Given a structurally valid file with several whole-file problems
    path = write(
        tmp_path,
        MINIMAL_HUB
        + """\
connectors:
  - id: feed-1
    type: feed
    source: https://feeds.example/rss
    every: 10s
    tlp: AMBER
  - id: feed-1
    type: stix
    scope: {share_with: [finance-isak]}
""",
    )
    # When it is checked
    errors = check_file(path, env={})
    # Then each problem is at its line
    assert [(e.line, e.message.split(": ", 1)[0]) for e in errors] == [
        (9, "connectors[0].every"),
        (10, "connectors[0].tlp"),
        (11, "connectors[1].id"),
        (13, "connectors[1].scope.share_with[0]"),
    ]


def test_semantic_checks_wait_for_a_valid_structure(tmp_path: Path) -> None:
    # Given a file with a structural error and a duplicate id
    path = write(
        tmp_path,
        """\
        hub: {id: hub-1}
        communities:
          - {id: a, kind: isac, deliver: [pull: {}]}
          - {id: a, kind: isac, deliver: [pull: {}], extra: 1}
        """,
    )
    # When it is loaded
    config, errors = load_config(path, env={})
    # Then only the structural error is reported (the ids mean nothing until the file has its shape)
    assert config is None
    assert "unknown field 'extra'" in only(errors).message


# --- messages a person can act on ----------------------------------------------------------------------


def test_unknown_connector_type_lists_the_types(tmp_path: Path) -> None:
    # Given a connector of a type that does not exist
    path = write(tmp_path, MINIMAL_HUB + "connectors:\n  - {id: c, type: rss, source: x}\n")
    # When it is checked
    error = only(check_file(path, env={}))
    # Then the type and the valid ones are named
    assert error.line == 6
    assert error.message == "connectors[0]: unknown connector type 'rss' (feed, email, taxii, peer, stix)"


def test_connector_without_type_says_it_needs_one(tmp_path: Path) -> None:
    # Given a connector with no type
    path = write(tmp_path, MINIMAL_HUB + "connectors:\n  - {id: c, source: x}\n")
    # When it is checked, Then the valid types are listed
    assert only(check_file(path, env={})).message == (
        "connectors[0]: a connector needs a type: feed, email, taxii, peer, stix"
    )


def test_unknown_kind_lists_the_kinds(tmp_path: Path) -> None:
    # Given a community of an unknown kind
    path = write(tmp_path, "hub: {id: h}\ncommunities:\n  - id: x\n    kind: bank\n    deliver: [pull: {}]\n")
    # When it is checked
    error = only(check_file(path, env={}))
    # Then the kind and every valid kind are named
    assert error.line == 4
    assert error.message == (
        "communities[0].kind: unknown kind 'bank' (isac, ceptoar, cert, regulator, vendor, organization, peer-hub)"
    )


def test_unknown_kind_in_an_exclusion_lists_the_kinds(tmp_path: Path) -> None:
    # Given an exclusion of an unknown kind
    path = write(
        tmp_path, MINIMAL_HUB + "connectors:\n  - {id: c, type: stix, scope: {exclude: [{kind: regulators}]}}\n"
    )
    # When it is checked, Then one message names it, not one per member of the union
    error = only(check_file(path, env={}))
    assert error.message.startswith("connectors[0].scope.exclude[0].kind: unknown kind 'regulators' (isac,")


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ("taxi: {url: 'https://t.example/'}", "unknown channel 'taxi': a channel is one of taxii, email, pull, peer"),
        ("{pull: {}, email: {to: [a@b.example]}}", "a channel has exactly one of taxii, email, pull, peer"),
        ("pull", "a channel is one of taxii, email, pull, peer (e.g. `- pull: {}`), not 'pull'"),
        ("email: {to: [nobody]}", "email.to[0]: 'nobody' is not an e-mail address"),
        ("peer: {url: 'https://p.example/', public_key_env: 1KEY}", "'1KEY' is not an environment variable name"),
    ],
)
def test_a_bad_channel_gets_one_clear_message(tmp_path: Path, channel: str, message: str) -> None:
    # Given a community with one bad delivery channel
    path = write(
        tmp_path, f"hub: {{id: h}}\ncommunities:\n  - id: x\n    kind: isac\n    deliver:\n      - {channel}\n"
    )
    # When it is checked
    error = only(check_file(path, env={}))
    # Then exactly one message says what is wrong with it, at its line
    assert error.line == 6
    assert error.message.startswith("communities[0].deliver[0]")
    assert message in error.message


def test_share_with_a_single_id_suggests_a_list(tmp_path: Path) -> None:
    # Given share_with written as a bare id
    path = write(tmp_path, MINIMAL_HUB + "connectors:\n  - {id: c, type: stix, scope: {share_with: bank-b}}\n")
    # When it is checked, Then the fix is named
    assert only(check_file(path, env={})).message == (
        "connectors[0].scope.share_with: share_with is `all` or a list of community ids, not 'bank-b'; "
        "for one community write [bank-b]"
    )


def test_amber_shared_with_all_is_an_error(tmp_path: Path) -> None:
    # Given an AMBER source that shares with all
    path = write(
        tmp_path, MINIMAL_HUB + "connectors:\n  - id: c\n    type: stix\n    tlp: AMBER\n    scope: {share_with: all}\n"
    )
    # When it is checked
    error = only(check_file(path, env={}))
    # Then it says nothing would be delivered, at share_with
    assert error.line == 9
    assert error.message.startswith("connectors[0].scope.share_with: TLP:AMBER with share_with: all")
    assert "would never deliver anything" in error.message


def test_amber_of_a_mail_member_inherits_the_mailbox_tlp(tmp_path: Path) -> None:
    # Given a mailbox at AMBER whose second member names no audience
    path = write(
        tmp_path,
        MINIMAL_HUB
        + """\
connectors:
  - id: box
    type: email
    address: report@hub.example
    tlp: AMBER
    members:
      - {match: "*@bank-a.example", org: Bank A, scope: {share_with: [finance-isac]}}
      - {match: "*@bank-c.example", org: Bank C}
""",
    )
    # When it is checked, Then that member is named
    error = only(check_file(path, env={}))
    assert (error.line, error.message.split(": ")[0]) == (12, "connectors[0].members[1]")


def test_amber_strict_needs_an_organization(tmp_path: Path) -> None:
    # Given AMBER+STRICT shared only with an ISAC
    path = write(
        tmp_path,
        MINIMAL_HUB + "connectors:\n  - {id: c, type: stix, tlp: AMBER+STRICT, scope: {share_with: [finance-isac]}}\n",
    )
    # When it is checked
    error = only(check_file(path, env={}))
    # Then it names the organizations that could receive it
    assert "none of finance-isac is one (organizations: bank-b)" in error.message


def test_duplicate_ids_are_errors_but_a_community_may_share_a_connectors_id(tmp_path: Path) -> None:
    # Given two communities and two connectors with the same id, and a connector named like a community
    path = write(
        tmp_path,
        MINIMAL_HUB
        + """\
  - {id: bank-b, kind: isac, deliver: [pull: {}]}
connectors:
  - {id: finance-isac, type: stix}
  - {id: drop, type: stix}
  - {id: drop, type: stix}
""",
    )
    # When it is checked
    errors = check_file(path, env={})
    # Then only the two duplicates are reported, at the second of each
    assert [(e.line, e.message.split(" (")[0]) for e in errors] == [
        (5, "communities[2].id: duplicate community id 'bank-b'"),
        (9, "connectors[2].id: duplicate connector id 'drop'"),
    ]


def test_unknown_community_in_share_with_and_exclude(tmp_path: Path) -> None:
    # Given a scope that names a community nobody serves, in share_with and in exclude, and a remote one
    path = write(
        tmp_path,
        """\
        hub: {id: hub-1, remote: [power-isac]}
        communities:
          - {id: finance-isac, kind: isac, deliver: [pull: {}]}
        connectors:
          - id: c
            type: stix
            scope:
              share_with: [power-isac, finance-isca]
              exclude: [fsa, {kind: regulator}]
        """,
    )
    # When it is checked
    errors = check_file(path, env={})
    # Then both unknown ids are named, with the known ones; the remote id is fine
    assert lines(errors) == [8, 9]
    assert errors[0].message == (
        "connectors[0].scope.share_with[1]: unknown community 'finance-isca' in share_with: not a community "
        "of this hub nor in hub.remote; did you mean 'finance-isac'? (known: finance-isac, power-isac)"
    )
    assert errors[1].message.startswith("connectors[0].scope.exclude[0]: unknown community 'fsa' in exclude")


def test_a_sender_community_from_outside_the_hub_is_fine(tmp_path: Path) -> None:
    # Given a sender whose community this hub does not serve
    path = write(tmp_path, MINIMAL_HUB + "connectors:\n  - {id: c, type: stix, sender: {org: X, community: cert}}\n")
    # When it is checked, Then nothing is wrong
    assert check_file(path, env={}) == []


# --- files that are not a config at all ------------------------------------------------------------------


def test_yaml_syntax_error_is_reported_at_its_line(tmp_path: Path) -> None:
    # Given a file whose fourth line breaks the YAML
    path = write(tmp_path, "hub:\n  id: hub-1\ncommunities:\n  - id: x\n   kind: isac\n")
    # When it is checked
    error = only(check_file(path, env={}))
    # Then the syntax error is reported with its line
    assert error.line == 5
    assert error.message.startswith("invalid YAML: ")


def test_duplicate_yaml_key_is_reported_at_its_line(tmp_path: Path) -> None:
    # Given a mapping with the same key twice
    path = write(tmp_path, "hub:\n  id: hub-1\n  id: hub-2\n")
    # When it is checked, Then the second key is pointed at
    error = only(check_file(path, env={}))
    assert error.line == 3
    assert 'duplicate key "id"' in error.message


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "---\n"])
def test_empty_file_is_an_error(tmp_path: Path, text: str) -> None:
    # Given an empty file
    path = write(tmp_path, text)
    # When it is checked
    error = only(check_file(path, env={}))
    # Then it says what a config needs at least
    assert str(error) == f"{path}:1: the file is empty: a hub config needs at least `hub: {{id: ...}}`"


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    # Given no file
    # When it is checked, Then it says so
    assert only(check_file(tmp_path / "nope.yaml", env={})).message.startswith("cannot read the file")


def test_load_config_or_raise_carries_every_error(tmp_path: Path) -> None:
    # Given an invalid file
    path = write(tmp_path, "hub: {id: hub-1, colour: blue}\ncommunities: 5\n")
    # When it is loaded to run
    with pytest.raises(ConfigInvalid) as raised:
        load_config_or_raise(path)
    # Then the exception holds every error, and prints them one per line
    assert lines(raised.value.errors) == [1, 2]
    assert str(raised.value).splitlines() == [str(e) for e in raised.value.errors]


def test_tlp_must_be_a_name_not_a_number(tmp_path: Path) -> None:
    # Given a TLP written as a number (TLP is ordered internally, but 1 is not GREEN to a reader)
    path = write(tmp_path, MINIMAL_HUB + "connectors:\n  - {id: c, type: stix, tlp: 1}\n")
    # When it is checked, Then it is refused
    assert "not a TLP level: 1" in only(check_file(path, env={})).message


# --- the pure checks --------------------------------------------------------------------------------------


def _config(connectors: list[dict[str, object]]) -> HubConfig:
    return HubConfig.model_validate(
        {
            "hub": {"id": "hub-1"},
            "communities": [{"id": "finance-isac", "kind": "isac", "deliver": [{"pull": {}}]}],
            "connectors": connectors,
        }
    )


@pytest.mark.parametrize(
    ("connector", "loc", "words"),
    [
        (
            {"id": "t", "type": "taxii", "url": "https://t.example/", "collection": "c", "every": "30s"},
            ("connectors", 0, "every"),
            "too frequent",
        ),
        ({"id": "m", "type": "email", "address": "r@hub.example"}, ("connectors", 0), "has no members"),
        (
            {"id": "m", "type": "email", "address": "r@hub.example", "members": [{"match": "*@*", "org": "X"}]},
            ("connectors", 0, "members", 0, "match"),
            "names no domain",
        ),
        ({"id": "p", "type": "peer", "public_key_env": "PEER_KEY"}, ("hub",), "cannot sign"),
    ],
)
def test_semantic_problems(connector: dict[str, object], loc: tuple[str | int, ...], words: str) -> None:
    # Given a config with one whole-file problem
    config = _config([connector])
    # When it is checked, without looking at secrets
    problems = semantic_problems(config, None)
    # Then that problem is found, where it is
    assert len(problems) == 1
    assert problems[0].loc == loc
    assert words in problems[0].message


def test_push_only_taxii_is_not_polled_and_a_trusted_relay_needs_no_domain() -> None:
    # Given a push-only TAXII connector with a short interval, and a mailbox that trusts its relay
    config = _config(
        [
            {
                "id": "t",
                "type": "taxii",
                "url": "https://t.example/",
                "collection": "c",
                "direction": "push",
                "every": "10s",
            },
            {
                "id": "m",
                "type": "email",
                "address": "r@hub.example",
                "authenticate": "none",
                "members": [{"match": "*@*", "org": "Relay"}],
            },
        ]
    )
    # When it is checked, Then nothing is wrong
    assert semantic_problems(config, None) == []


# --- the JSON Schema -------------------------------------------------------------------------------------


def test_json_schema_is_valid_and_accepts_the_example() -> None:
    # Given the schema `gateway schema` prints, and the example as plain YAML data
    schema = json.loads(json.dumps(config_json_schema()))
    example = YAML(typ="safe", pure=True).load(EXAMPLE.read_text())
    # When the schema is checked and the example validated against it
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(example))
    # Then both pass; TLP is a string enum
    assert errors == []
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Renkei hub configuration"
    assert "AMBER+STRICT" in json.dumps(schema["$defs"]["FeedConnector"]["properties"]["tlp"])


def test_json_schema_refuses_what_check_refuses() -> None:
    # Given a config with an unknown connector type
    schema = config_json_schema()
    bad = {"hub": {"id": "h"}, "connectors": [{"id": "c", "type": "rss"}]}
    # When validated, Then the schema refuses it too
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)
