"""Acknowledging a cdk-nag finding: on the narrowest construct, with the reason it does not apply."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Suppress `rule_id` (e.g. `AwsSolutions-IAM5[Resource::*]`) on `construct` and its children."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))
