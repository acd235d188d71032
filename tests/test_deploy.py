"""The deployment as code: the image's Containerfile, the CloudFormation template, the
Kubernetes manifests and the one-command-per-environment deploy script.

The linters run from their own venv (.venv-iac, `make iac-tools`, which `make test`
creates): cfn-lint and checkov on deploy/aws/wearflow.yaml, kubernetes-validate on every
built-in kind of every rendered overlay (`kubectl kustomize`), and the dask-kubernetes
custom resources against deploy/k8s/schemas/dask-kubernetes-v1.json (written from the
operator's documented CRDs), their pod specs against the Kubernetes Pod schema.
A missing tool fails the test, naming the command that installs it; nothing is skipped.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
TEMPLATE = DEPLOY / "aws" / "wearflow.yaml"
IAC_BIN = ROOT / ".venv-iac" / "bin"
ENVIRONMENTS = ("dev", "stage", "prod")
K8S_VERSION = "1.31.0"
DIGEST = "sha256:" + "ab" * 32
IMAGE = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/wearflow@{DIGEST}"


def _tool(name: str) -> Path:
    path = IAC_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make iac-tools` (the IaC linters' venv)")
    return path


def _run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


# --- CloudFormation: a loader that keeps the short-form intrinsics as plain values ------

class _CfnLoader(yaml.SafeLoader):
    pass


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)
    return loaded


def _resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for p in role["Properties"].get("Policies", [])
            for s in p["PolicyDocument"]["Statement"]]


def _actions(role: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for statement in _statements(role):
        action = statement["Action"]
        out.update([action] if isinstance(action, str) else action)
    return out


def test_cfn_lint_passes() -> None:
    result = _run(_tool("cfn-lint"), TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_passes_and_every_skip_is_justified(template: dict[str, Any]) -> None:
    result = _run(_tool("checkov"), "--quiet", "--compact", "--skip-download",
                  "--framework", "cloudformation", "-o", "json", "-f", TEMPLATE)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    report = json.loads(result.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0 and summary["parsing_errors"] == 0
    assert summary["passed"] > 100  # the checks really ran
    documented = template["Metadata"]["wearflow-checkov-skips"]
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip["comment"]) > 30, (name, skip)
            assert skip["id"] in documented, f"{name}: {skip['id']} not in the template Metadata"


def test_template_parameters_pin_the_environment_and_the_image(template: dict[str, Any]) -> None:
    params = template["Parameters"]
    assert params["EnvironmentName"]["AllowedValues"] == list(ENVIRONMENTS)
    pattern = re.compile(params["Image"]["AllowedPattern"])
    assert pattern.match(IMAGE)
    assert not pattern.match("123456789012.dkr.ecr.eu-west-1.amazonaws.com/wearflow:0.1.0")
    for task in _resources(template, "AWS::ECS::TaskDefinition").values():
        for container in task["Properties"]["ContainerDefinitions"]:
            assert container["Image"] == {"Ref": "Image"}
            assert container["User"] == "10001:10001"
            assert container["ReadonlyRootFilesystem"] is True


def test_buckets_encrypted_versioned_private_and_results_lockable(
        template: dict[str, Any]) -> None:
    buckets = _resources(template, "AWS::S3::Bucket")
    assert {"LandingBucket", "ResultsBucket"} <= set(buckets)
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    lock = buckets["ResultsBucket"]["Properties"]["ObjectLockConfiguration"]["Fn::If"]
    assert lock[0] == "UseObjectLock"
    assert lock[1]["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    assert "ObjectLockEnabled" not in buckets["LandingBucket"]["Properties"]


def test_landing_bucket_notifies_the_queue_watch_reads(template: dict[str, Any]) -> None:
    landing = template["Resources"]["LandingBucket"]
    queues = landing["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert {q["Event"] for q in queues} >= {"s3:ObjectCreated:*"}
    assert all(q["Queue"] == {"Fn::GetAtt": ["LandingQueue", "Arn"]} for q in queues)
    assert landing["DependsOn"] == "LandingQueuePolicy"
    (statement,) = template["Resources"]["LandingQueuePolicy"]["Properties"][
        "PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert "aws:SourceArn" in statement["Condition"]["ArnEquals"]


def test_roles_are_least_privilege(template: dict[str, Any]) -> None:
    roles = template["Resources"]
    worker, coordinator = roles["WorkerTaskRole"], roles["CoordinatorTaskRole"]
    assert _actions(worker) == {"s3:ListBucket", "s3:GetObject", "s3:PutObject",
                                "kms:Decrypt", "kms:GenerateDataKey"}
    assert _actions(coordinator) == _actions(worker) | {
        "s3:GetObjectVersion", "sqs:ReceiveMessage", "sqs:DeleteMessage",
        "sqs:GetQueueAttributes"}
    # workers write results and read landing only: no PutObject on landing
    for statement in _statements(worker):
        if "s3:PutObject" in statement["Action"]:
            assert statement["Resource"] == {"Fn::Sub": "${ResultsBucket.Arn}/*"}
    # the database's and the audit key's secrets: only what starts the coordinator
    assert "secretsmanager:GetSecretValue" in _actions(roles["CoordinatorExecutionRole"])
    assert "secretsmanager:GetSecretValue" not in _actions(roles["ClusterExecutionRole"])
    for name, role in _resources(template, "AWS::IAM::Role").items():
        for statement in _statements(role):
            actions = statement["Action"]
            assert "*" not in (actions if isinstance(actions, list) else [actions]), name
            assert not any(a.endswith(":*") for a in
                           (actions if isinstance(actions, list) else [actions])), name
            if statement["Resource"] == "*":
                assert actions == "ecr:GetAuthorizationToken", name  # has no resource ARN


def test_database_is_encrypted_private_and_its_password_generated(
        template: dict[str, Any]) -> None:
    props = template["Resources"]["Database"]["Properties"]
    assert props["StorageEncrypted"] is True and props["PubliclyAccessible"] is False
    assert "{{resolve:secretsmanager:" in props["MasterUserPassword"]["Fn::Sub"]
    secret = template["Resources"]["DbSecret"]["Properties"]["GenerateSecretString"]
    assert secret["ExcludePunctuation"] is True  # it goes into a URL unquoted


def test_compute_is_scaled_to_zero_and_runs_the_image_commands(
        template: dict[str, Any]) -> None:
    services = _resources(template, "AWS::ECS::Service")
    assert {s["Properties"]["ServiceName"] for s in services.values()} == {
        "coordinator", "dashboard", "dask-scheduler", "dask-worker"}
    assert {s["Properties"]["DesiredCount"] for s in services.values()} == {0}
    tasks = template["Resources"]
    scheduler = tasks["SchedulerTask"]["Properties"]["ContainerDefinitions"][0]["Command"]
    worker = tasks["WorkerTask"]["Properties"]["ContainerDefinitions"][0]["Command"]
    assert scheduler[:2] == ["dask", "scheduler"]
    assert worker[:2] == ["dask", "worker"]
    assert worker[worker.index("--nthreads") + 1] == "1"
    assert "--resources" in worker
    coordinator = tasks["CoordinatorTask"]["Properties"]["ContainerDefinitions"][0]
    assert "wearflow watch /tmp/study.yaml" in coordinator["Command"][0]
    assert "/tmp/wearflow.profiles.yaml" in coordinator["Command"][0]
    assert {"Name": "WEARFLOW_PROFILE", "Value": {"Ref": "EnvironmentName"}} in coordinator[
        "Environment"]
    assert "WorkerTaskRole" in str(tasks["WorkerTask"]["Properties"]["TaskRoleArn"])
    assert "TaskRoleArn" not in tasks["SchedulerTask"]["Properties"]
    for group in _resources(template, "AWS::Logs::LogGroup").values():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


# --- The one command per environment ----------------------------------------------------

@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_make_deploy_dry_run_prints_the_exact_command(env: str) -> None:
    result = _run("make", "-s", "deploy", f"ENV={env}", f"IMAGE={IMAGE}", "DRY_RUN=1")
    assert result.returncode == 0, result.stderr
    words = [w.strip(" \\") for w in result.stdout.splitlines()]
    assert words[:3] == ["aws", "cloudformation", "deploy"]
    assert words[words.index("--stack-name") + 1] == f"wearflow-{env}"
    assert words[words.index("--template-file") + 1] == "deploy/aws/wearflow.yaml"
    overrides = dict(w.split("=", 1) for w in words[words.index("--parameter-overrides") + 1:])
    params = json.loads((DEPLOY / "aws" / f"params-{env}.json").read_text(encoding="utf-8"))
    assert overrides == {**params, "Image": IMAGE}
    template_params = yaml.load(TEMPLATE.read_text(encoding="utf-8"),
                                Loader=_CfnLoader)["Parameters"]
    assert set(overrides) <= set(template_params)
    for key, value in overrides.items():
        allowed = template_params[key].get("AllowedValues")
        assert allowed is None or value in [str(a) for a in allowed], (key, value)


def test_deploy_refuses_an_image_not_pinned_by_digest() -> None:
    result = _run(sys.executable, DEPLOY / "deploy.py", "aws", "stage",
                  "--image", "registry.example.org/wearflow:0.1.0", "--dry-run")
    assert result.returncode == 2
    assert "pinned by digest" in result.stderr


def test_deploy_refuses_parameters_still_holding_the_placeholders() -> None:
    result = _run(sys.executable, DEPLOY / "deploy.py", "aws", "stage", "--image", IMAGE)
    assert result.returncode == 2
    assert "params-stage.json: PrivateSubnetIds, VpcId still hold the placeholder" in (
        result.stderr)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_make_deploy_k8s_dry_run_applies_the_overlay(env: str) -> None:
    result = _run("make", "-s", "deploy-k8s", f"ENV={env}", "DRY_RUN=1")
    assert result.returncode == 0, result.stderr
    words = [w.strip(" \\") for w in result.stdout.splitlines()]
    assert words == ["kubectl", "apply", "--server-side", "-k", f"deploy/k8s/overlays/{env}"]


def test_deploy_k8s_refuses_the_placeholder_digest() -> None:
    result = _run(sys.executable, DEPLOY / "deploy.py", "k8s", "stage")
    assert result.returncode == 2
    assert "placeholder" in result.stderr


# --- Kubernetes -------------------------------------------------------------------------

def _rendered(env: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with its built-in kustomize) is needed to render the overlays")
    result = _run(kubectl, "kustomize", DEPLOY / "k8s" / "overlays" / env)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def _pod_specs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if doc["kind"] == "Deployment":
        yield doc["spec"]["template"]["spec"]
    elif doc["kind"] == "DaskCluster":
        yield doc["spec"]["worker"]["spec"]
        yield doc["spec"]["scheduler"]["spec"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_k8s_overlay_validates(env: str, tmp_path: Path) -> None:
    docs = _rendered(env)
    kinds = {d["kind"] for d in docs}
    assert kinds == {"Namespace", "ServiceAccount", "ConfigMap", "Deployment", "Service",
                     "DaskCluster", "DaskAutoscaler"}
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in docs} == {
        f"wearflow-{env}"}
    builtin = [d for d in docs if not d["apiVersion"].startswith("kubernetes.dask.org/")]
    dask = [d for d in docs if d["apiVersion"].startswith("kubernetes.dask.org/")]
    # the dask pod specs and the scheduler's service spec, as the built-in kinds they are
    for i, doc in enumerate(d for d in dask if d["kind"] == "DaskCluster"):
        for j, spec in enumerate(_pod_specs(doc)):
            builtin.append({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": f"dask-{i}-{j}"}, "spec": spec})
        builtin.append({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": f"dask-{i}-scheduler"},
                        "spec": doc["spec"]["scheduler"]["service"]})
    manifests = tmp_path / "builtin.yaml"
    manifests.write_text(yaml.safe_dump_all(builtin), encoding="utf-8")
    result = _run(_tool("kubernetes-validate"), "--strict", "-k", K8S_VERSION, manifests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("INFO") >= len(builtin), result.stdout

    crds = tmp_path / "dask.json"
    crds.write_text(json.dumps(dask), encoding="utf-8")
    check = ("import json, sys, jsonschema\n"
             "schema = json.load(open(sys.argv[1]))\n"
             "for doc in json.load(open(sys.argv[2])):\n"
             "    jsonschema.validate(doc, schema)\n"
             "print('valid', len(json.load(open(sys.argv[2]))))\n")
    result = _run(_tool("python"), "-c", check,
                  DEPLOY / "k8s" / "schemas" / "dask-kubernetes-v1.json", crds)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "valid 2"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_k8s_pods_are_non_root_bounded_digest_pinned_and_hold_no_secret(env: str) -> None:
    docs = _rendered(env)
    assert not [d for d in docs if d["kind"] == "Secret"]  # secrets are referenced only
    specs = [s for d in docs for s in _pod_specs(d)]
    assert len(specs) == 4
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            assert re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", container["image"])
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["resources"]["requests"]["memory"]
            assert container["resources"]["limits"]["memory"]
            for env_var in container.get("env", []):
                assert "value" in env_var and "secret" not in env_var["name"].lower()
    cluster = next(d for d in docs if d["kind"] == "DaskCluster")
    assert cluster["spec"]["worker"]["replicas"] == 0
    worker_args = cluster["spec"]["worker"]["spec"]["containers"][0]["args"]
    assert worker_args[:3] == ["dask", "worker", "$(DASK_SCHEDULER_ADDRESS)"]
    assert worker_args[worker_args.index("--nthreads") + 1] == "1"
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["spec"]["replicas"] for d in deployments} == {0}
    maps = {d["metadata"]["name"].rsplit("-", 1)[0]: d["data"] for d in docs
            if d["kind"] == "ConfigMap"}
    assert maps["wearflow-env"] == {"WEARFLOW_PROFILE": env}
    profiles = yaml.safe_load(maps["wearflow-study"]["wearflow.profiles.yaml"])["profiles"]
    assert profiles[env]["executor"] == "dask://wearflow-scheduler:8786"
    assert "state" not in profiles[env]  # from the secret's WEARFLOW_STATE_URL
    assert "executor" not in yaml.safe_load(maps["wearflow-study"]["study.yaml"])


# --- The image --------------------------------------------------------------------------

def _stages() -> list[list[str]]:
    """The Containerfile's instructions (continuations joined), split by FROM."""
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()
    instructions = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    stages: list[list[str]] = [[]]
    for instruction in instructions:
        if instruction.startswith("FROM "):
            stages.append([])
        stages[-1].append(instruction)
    return stages


def test_containerfile_follows_the_image_rules() -> None:
    preamble, builder, final = _stages()
    (base_arg,) = preamble
    assert re.fullmatch(r"ARG BASE=\S+:[\w.-]+@sha256:[0-9a-f]{64}", base_arg)
    assert builder[0] == "FROM ${BASE} AS builder" and final[0] == "FROM ${BASE}"
    syncs = [i for i in builder if "uv sync" in i]
    assert len(syncs) == 2
    for sync in syncs:
        assert "--frozen" in sync and "--no-dev" in sync and "--all-extras" in sync
        assert "--group" not in sync and "--no-editable" in sync
    assert "fetch_uv.py uv.lock" in " ".join(builder)  # the uv the lock pins, by hash
    final_text = " ".join(final)
    assert [i for i in final if i.startswith("USER ")] == ["USER 10001:10001"]
    assert final[-1].startswith("CMD ")
    copies = [i for i in final if i.startswith("COPY")]
    assert copies == ["COPY --from=builder /app/.venv /app/.venv"]
    for forbidden in ("gcc", "build-essential", "pip install", "uv sync", "/root/.cache"):
        assert forbidden not in final_text, forbidden
    labels = " ".join(i for i in final if i.startswith("LABEL "))
    assert 'org.opencontainers.image.version="${VERSION}"' in labels
    assert 'org.opencontainers.image.revision="${GIT_COMMIT}"' in labels
    assert {"ARG VERSION=0.0.0+unknown", "ARG GIT_COMMIT=unknown"} <= set(final)


def test_the_image_uv_is_the_one_the_lock_and_makefile_pin() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    (uv,) = [p for p in lock["package"] if p["name"] == "uv"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"UV_VERSION = {uv['version']}\n" in makefile
    for machine in ("x86_64", "aarch64"):
        assert len([w for w in uv["wheels"]
                    if f"manylinux_2_17_{machine}" in w["url"]]) == 1, machine


def test_the_build_context_holds_only_what_the_image_needs() -> None:
    rules = [ln for ln in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
             if ln and not ln.startswith("#")]
    assert rules[0] == "*"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = {"pyproject.toml", "uv.lock", "README.md", "src", "deploy/fetch_uv.py"}
    assert allowed == copied
    for path in copied:
        assert (ROOT / path).exists(), path


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_k8s_overlay_profile_is_one_wearflow_accepts(env: str) -> None:
    from wearflow.profiles import apply_profile, read_profiles, select_profile

    path = DEPLOY / "k8s" / "overlays" / env / "wearflow.profiles.yaml"
    profile = select_profile(read_profiles(path), env, path)
    merged = apply_profile({"study": "X", "executor": "local"}, profile, environ={})
    assert merged["executor"] == "dask://wearflow-scheduler:8786"
    assert merged["input"] == f"s3://wearflow-{env}-landing-ACCOUNT/raw/"
