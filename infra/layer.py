"""Build the dependencies layer for the functions: `python -m infra.layer [--python 3.14] [--out build/lambda-layer]`.

Installs the runtime dependencies of pyproject.toml (not boto3, which Lambda provides) as manylinux wheels for
Lambda's arm64 platform into OUT/python, the folder the stack turns into a layer (setting `dependencies_layer`).
Needs the package index (or a mirror); `cdk synth` itself does not.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Provided by the Lambda runtime; a copy in the layer would only add size and a second version.
PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"}
# Tools of the operator's machine, never imported by a function.
NOT_AT_RUNTIME = {"typer", "rich", "ruamel.yaml", "moto", "aws-cdk-lib", "cdk-nag", "constructs"}
# Only Lambda needs these: Powertools' Tracer sends to X-Ray through the X-Ray SDK (its `tracer` extra).
LAMBDA_ONLY = ["aws-xray-sdk>=2.12"]


def runtime_requirements(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The `dependencies` of pyproject.toml that a function may import."""
    declared: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]

    def name(requirement: str) -> str:
        for mark in "<>=!~[; ":
            requirement = requirement.split(mark, 1)[0]
        return requirement.strip().lower()

    return [r for r in declared if name(r) not in PROVIDED | NOT_AT_RUNTIME] + LAMBDA_ONLY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--python", default="3.14", help="Lambda's Python version (setting python_runtime)")
    parser.add_argument("--out", default="build/lambda-layer", type=Path)
    args = parser.parse_args()
    target = args.out / "python"
    shutil.rmtree(args.out, ignore_errors=True)
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
        "--platform", "manylinux2014_aarch64", "--implementation", "cp", "--python-version", args.python,
        "--only-binary=:all:", *runtime_requirements(),
    ]  # fmt: skip
    subprocess.run(command, check=True)  # noqa: S603 (our own interpreter, arguments from pyproject)
    print(f"layer ready: {args.out} ({sum(1 for _ in target.rglob('*'))} files)")


if __name__ == "__main__":
    main()
