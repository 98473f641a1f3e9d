"""The Lambda code: the repo's runtime packages as one asset, and their third-party dependencies as a layer.

Synth stays offline and needs no Docker: the packages are copied as they are (pure Python), and the layer is
a folder built beforehand by `python -m infra.layer` (pip, for Lambda's platform). Without that folder the
stack still synthesises (tests, `cdk diff`), with a warning that the functions would lack their dependencies.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from aws_cdk import Annotations, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

ROOT = Path(__file__).resolve().parents[1]
# What runs in Lambda (local/ and infra/ never do); the layering contract keeps these free of local/.
RUNTIME_PACKAGES = ("schemas", "gateway", "connectors", "functions")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", "tests", "*.md")


def runtime_code(root: Path = ROOT) -> lambda_.Code:
    """The runtime packages, staged in a temporary folder so nothing else of the repo (.venv, .git) is hashed."""
    staging = Path(tempfile.mkdtemp(prefix="renkei-lambda-code-"))
    atexit.register(shutil.rmtree, staging, ignore_errors=True)  # the asset is copied into cdk.out at synth
    for package in RUNTIME_PACKAGES:
        shutil.copytree(root / package, staging / package, ignore=_SKIP)
    return lambda_.Code.from_asset(str(staging))


def dependencies_layer(scope: Construct, layer_dir: str, runtime: lambda_.Runtime) -> lambda_.ILayerVersion | None:
    """The layer at `layer_dir` (relative to the repo), or None with a synth warning when it is not built."""
    path = Path(layer_dir) if Path(layer_dir).is_absolute() else ROOT / layer_dir
    if not (path / "python").is_dir():
        Annotations.of(scope).add_warning_v2(
            "renkei:dependencies-layer-missing",
            f"{path} is not built: run `python -m infra.layer` before `cdk deploy`, or the functions cannot import "
            "their dependencies (pydantic, orjson, powertools, ...)",
        )
        return None
    return lambda_.LayerVersion(
        scope,
        "Dependencies",
        code=lambda_.Code.from_asset(str(path)),
        compatible_runtimes=[runtime],
        compatible_architectures=[lambda_.Architecture.ARM_64],
        description="Renkei: third-party packages of the runtime (pyproject dependencies)",
        removal_policy=RemovalPolicy.RETAIN,
    )
