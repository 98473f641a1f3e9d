"""CDK entry point: `cdk synth` runs `python -m infra.app` (see cdk.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from aws_cdk import App, Environment, Validations
from cdk_nag import AwsSolutionsChecks
from ruamel.yaml import YAML

from infra.settings import StackSettings
from infra.stack import RenkeiStack, stack_name_for
from schemas.config import HubConfig

DEFAULT_CONFIG = Path("examples/gateway.yaml")
FALLBACK_CONFIG = Path("examples/gateway.example.yaml")


def config_path(app: App) -> Path:
    """The hub config: `-c config=PATH`, else `$RENKEI_CONFIG`, else the bundled example."""
    explicit = app.node.try_get_context("config") or os.environ.get("RENKEI_CONFIG")
    if explicit:
        return Path(explicit)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else FALLBACK_CONFIG


def load_config(path: Path) -> HubConfig:
    """The validated hub config at `path`. Raises OSError, ruamel's YAMLError or pydantic's ValidationError."""
    # The safe loader builds plain data only: a config file must never be able to run code.
    with path.open(encoding="utf-8") as handle:
        return HubConfig.model_validate(YAML(typ="safe", pure=True).load(handle))


def build(context: dict[str, Any] | None = None, outdir: str | None = None) -> tuple[App, RenkeiStack]:
    """The app with its one stack and cdk-nag's AwsSolutions pack, which fails synth on any unacknowledged finding."""
    app = App(context=context, outdir=outdir)
    config = load_config(config_path(app))
    settings = StackSettings.from_context(app.node.try_get_context("renkei"))
    stack = RenkeiStack(
        app,
        "Renkei",
        stack_name=stack_name_for(config),
        config=config,
        settings=settings,
        # Environment-agnostic unless the CLI names an account and region.
        env=Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")),
    )
    add_checks(app)
    return app, stack


def add_checks(app: App) -> None:
    """Run cdk-nag's AwsSolutions pack at synth; an unacknowledged finding makes synth raise."""
    # cdk-nag v3 is a policy-validation plugin (its v2 Aspect and NagSuppressions are gone): a finding
    # that cannot be fixed is acknowledged with Validations.of(construct).acknowledge, on the narrowest construct.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))


def cli_context() -> dict[str, Any] | None:
    """cdk.json's context when run without the CDK CLI (`python -m infra.app`); the CLI passes it itself."""
    if "CDK_CONTEXT_JSON" in os.environ:
        return None
    cdk_json = Path(__file__).resolve().parents[1] / "cdk.json"
    context: dict[str, Any] = json.loads(cdk_json.read_text())["context"]
    return context


def main() -> None:
    app, _ = build(cli_context())
    app.synth()


if __name__ == "__main__":
    main()
