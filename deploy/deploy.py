"""One command per environment: render and run the deployment of dev, stage or prod.

    python3 deploy/deploy.py aws ENV --image REGISTRY/wearflow@sha256:... [--dry-run]
    python3 deploy/deploy.py k8s ENV [--dry-run]

``aws`` deploys deploy/aws/wearflow.yaml as the stack ``wearflow-ENV`` with the parameters
of deploy/aws/params-ENV.json and the image given (pinned by digest); ``k8s`` applies the
kustomize overlay deploy/k8s/overlays/ENV. ``--dry-run`` prints the exact command, one
argument per line, and runs nothing. The Makefile's ``deploy`` and ``deploy-k8s`` call it.
Standard library only: it runs before any environment exists.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = Path("deploy")  # relative to ROOT, where the command runs
ENVIRONMENTS = ("dev", "stage", "prod")
_DIGEST_RE = re.compile(r"^[a-z0-9.:/_-]+@sha256:[a-f0-9]{64}$")


class DeployError(Exception):
    """A deployment that cannot be rendered; the message names what is wrong."""


def aws_command(env: str, image: str, dry_run: bool = False) -> list[str]:
    """The ``aws cloudformation deploy`` command for ``env``, parameters sorted by name.
    A real deployment (not ``dry_run``) refuses parameters still holding the shipped
    placeholders (``REPLACE``: the VPC and subnets of the account)."""
    if not _DIGEST_RE.match(image):
        raise DeployError("IMAGE must be pinned by digest (REGISTRY/wearflow@sha256:...): "
                          f"{image!r}")
    params_path = DEPLOY / "aws" / f"params-{env}.json"
    params = json.loads((ROOT / params_path).read_text(encoding="utf-8"))
    if params.get("EnvironmentName") != env:
        raise DeployError(f"{params_path.name}: EnvironmentName is not {env!r}")
    if "Image" in params:
        raise DeployError(f"{params_path.name}: the image comes from IMAGE, not the file")
    unset = sorted(key for key, value in params.items() if "REPLACE" in str(value))
    if unset and not dry_run:
        raise DeployError(f"{params_path}: {', '.join(unset)} still hold the placeholder; "
                          "put your account's values there")
    params["Image"] = image
    return [
        "aws", "cloudformation", "deploy",
        "--stack-name", f"wearflow-{env}",
        "--template-file", str(DEPLOY / "aws" / "wearflow.yaml"),
        "--capabilities", "CAPABILITY_IAM",
        "--no-fail-on-empty-changeset",
        "--tags", "project=wearflow", f"environment={env}",
        "--parameter-overrides",
        *(f"{key}={params[key]}" for key in sorted(params)),
    ]


_PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


def k8s_command(env: str, dry_run: bool = False) -> list[str]:
    """The ``kubectl apply -k`` command for ``env``'s overlay (server-side apply)."""
    overlay = ROOT / DEPLOY / "k8s" / "overlays" / env / "kustomization.yaml"
    if not dry_run and _PLACEHOLDER_DIGEST in overlay.read_text(encoding="utf-8"):
        raise DeployError(f"{overlay.relative_to(ROOT)}: the image digest is still the "
                          "placeholder; put the pushed image's digest there")
    return ["kubectl", "apply", "--server-side", "-k", str(DEPLOY / "k8s" / "overlays" / env)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=("aws", "k8s"))
    parser.add_argument("env", choices=ENVIRONMENTS)
    parser.add_argument("--image", default="", help="REGISTRY/wearflow@sha256:... (aws)")
    parser.add_argument("--dry-run", action="store_true", help="print the command only")
    args = parser.parse_args(argv)
    try:
        if args.target == "aws":
            command = aws_command(args.env, args.image, args.dry_run)
        else:
            command = k8s_command(args.env, args.dry_run)
    except DeployError as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(" \\\n  ".join(shlex.quote(part) for part in command))
        return 0
    return subprocess.call(command, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
