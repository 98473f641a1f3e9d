"""SES inbound: a receipt rule per e-mail connector stores each message in the raw bucket, then starts mail ingest.

The message lands in `mail/<connector id>/<SES message id>` (the raw bytes are in S3 before anything else),
then SES invokes the mail-ingest function, which reads that object. SES stores through the S3 action (messages
up to 40 MB; SNS would cap them at 150 KB). Operators still verify the domain, point its MX record at SES and
make this rule set the active one (`aws ses set-active-receipt-rule-set`): one rule set is active per region.
"""

from __future__ import annotations

import hashlib

from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ses as ses
from aws_cdk import aws_ses_actions as actions
from constructs import Construct

from schemas.config import EmailConnector, HubConfig

MAIL_PREFIX = "mail/"  # functions/mail_ingest/handler.py: mail_key()


class InboundMail(Construct):
    """`rule_set` and `rules[connector id]`; nothing when the config has no e-mail connector."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: HubConfig,
        bucket: s3.IBucket,
        ingest: lambda_.IFunction,
        prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.rules: dict[str, ses.ReceiptRule] = {}
        mailboxes = [c for c in config.connectors if isinstance(c, EmailConnector)]
        if not mailboxes:
            return
        self.rule_set = ses.ReceiptRuleSet(self, "RuleSet", receipt_rule_set_name=f"{prefix}-{config.hub.id}"[:64])
        for connector in mailboxes:
            self.rules[connector.id] = self.rule_set.add_rule(
                f"Mailbox{hashlib.sha256(connector.id.encode()).hexdigest()[:12]}",
                recipients=[connector.address],
                scan_enabled=True,  # spam and virus verdicts travel in the event
                tls_policy=ses.TlsPolicy.REQUIRE,
                actions=[
                    actions.S3(bucket=bucket, object_key_prefix=f"{MAIL_PREFIX}{connector.id}/"),
                    actions.Lambda(function=ingest, invocation_type=actions.LambdaInvocationType.EVENT),
                ],
            )
