"""API Gateway (REST) in front of the API function: TAXII 2.1 server, peer inbox, approvals, health.

Throttled per stage; WAF in front (AWS common rules, a rate limit per address); access logs as JSON without
bodies. Authentication is the function's: TAXII 2.1 clients send HTTP Basic credentials (TAXII 2.1 section
1.6.1), peer hubs sign their bundles with Ed25519, approvals carry a one-time token; /health is open.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

from infra.constructs.nag import acknowledge
from infra.settings import StackSettings

_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "wafStatus": "$context.waf.status",
    "integrationLatency": "$context.integrationLatency",
}


class Api(Construct):
    """`api` (the REST API) and `web_acl`."""

    def __init__(
        self, scope: Construct, construct_id: str, *, handler: lambda_.IFunction, settings: StackSettings
    ) -> None:
        super().__init__(scope, construct_id)
        access_logs = logs.LogGroup(
            self, "AccessLogs", retention=logs.RetentionDays.THIRTEEN_MONTHS, removal_policy=RemovalPolicy.RETAIN
        )
        self.api = apigateway.LambdaRestApi(
            self,
            "Api",
            handler=handler,
            proxy=True,
            description="Renkei: TAXII 2.1 server, peer inbox, approvals",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            # Bodies: TAXII 2.1 advertises max_content_length below API Gateway's 10 MB, the function answers 413.
            binary_media_types=["application/octet-stream"],
            cloud_watch_role=False,
            deploy_options=apigateway.StageOptions(
                stage_name="v1",
                throttling_rate_limit=settings.api_rate_limit,
                throttling_burst_limit=settings.api_burst_limit,
                tracing_enabled=True,
                data_trace_enabled=False,  # would log request and response bodies: intel
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.custom(_json(_ACCESS_LOG_FIELDS)),
            ),
        )
        self.web_acl = self._waf(settings)
        wafv2.CfnWebACLAssociation(
            self, "WafAssociation", resource_arn=self.api.deployment_stage.stage_arn, web_acl_arn=self.web_acl.attr_arn
        )
        self._acknowledge()

    def _waf(self, settings: StackSettings) -> wafv2.CfnWebACL:
        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=False
            )

        common = wafv2.CfnWebACL.RuleProperty(
            name="aws-common",
            priority=1,
            override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name="AWS",
                    name="AWSManagedRulesCommonRuleSet",
                    # STIX bundles are larger than 8 KB and quote URLs and scripts by design (indicators):
                    # count these rules, do not block on them.
                    rule_action_overrides=[
                        wafv2.CfnWebACL.RuleActionOverrideProperty(
                            name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                        )
                        for rule in ("SizeRestrictions_BODY", "CrossSiteScripting_BODY", "GenericRFI_BODY")
                    ],
                )
            ),
            visibility_config=visibility("renkei-aws-common"),
        )
        per_ip = wafv2.CfnWebACL.RuleProperty(
            name="rate-per-ip",
            priority=2,
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    limit=settings.api_requests_per_ip_per_5_minutes, aggregate_key_type="IP"
                )
            ),
            visibility_config=visibility("renkei-rate-per-ip"),
        )
        return wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            rules=[common, per_ip],
            # Sampled requests would keep request bodies (intel) in the WAF console.
            visibility_config=wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name="renkei-api", sampled_requests_enabled=False
            ),
        )

    def _acknowledge(self) -> None:
        reason = (
            "TAXII 2.1 clients authenticate with HTTP Basic (TAXII 2.1 section 1.6.1) and peer hubs with Ed25519 "
            "signatures over the bundle; neither fits an API Gateway authorizer or Cognito, so the API function "
            "verifies both (against secrets in SSM); /health is open by design"
        )
        for method in self.api.methods:
            acknowledge(method, "AwsSolutions-APIG4", reason)
            acknowledge(method, "AwsSolutions-COG4", reason)
        acknowledge(
            self.api,
            "AwsSolutions-APIG2",
            "Every route is proxied: the function validates bodies against the TAXII 2.1 and STIX 2.1 rules",
        )
        acknowledge(
            self.api.deployment_stage,
            "AwsSolutions-APIG6",
            (
                "Execution logging needs the account-wide API Gateway CloudWatch role, which this stack does not "
                "own; access logs (JSON, no bodies) are on and the function logs every request it serves"
            ),
        )


def _json(fields: dict[str, str]) -> str:
    # API Gateway substitutes the $context variables; numbers stay unquoted only where they are always numbers.
    return "{" + ",".join(f'"{k}":"{v}"' for k, v in fields.items()) + "}"
