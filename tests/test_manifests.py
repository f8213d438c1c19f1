"""The cluster manifests: every kustomization builds, core kinds validate strictly, and the pieces
agree with each other and with the compiled pipeline (PVC and Secret names, mount path, DSPA route).

`kubectl kustomize` builds offline; tests that need it skip when kubectl is not installed.
`kubernetes-validate --strict` checks core kinds against the Kubernetes JSON schemas it ships;
custom resources (DSPA, ServingRuntime, InferenceService) have no offline schema, so their key
fields are checked here by hand.
"""

import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from socratic_sdg.pipelines.form import short_name

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
COMPILED = ROOT / "pipelines" / "socratic_sdg_pipeline.yaml"
KUSTOMIZATIONS = sorted(p.parent.relative_to(MANIFESTS).as_posix() for p in MANIFESTS.rglob("kustomization.yaml"))
OVERLAYS = [k for k in KUSTOMIZATIONS if k.startswith("overlays/")]
# Kubernetes 1.29 (OpenShift 4.16) and the newest schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.29", "latest")
CORE_GROUPS = {"v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1", "policy/v1"}
CUSTOM_KINDS = {
    ("datasciencepipelinesapplications.opendatahub.io/v1", "DataSciencePipelinesApplication"),
    ("serving.kserve.io/v1alpha1", "ServingRuntime"),
    ("serving.kserve.io/v1beta1", "InferenceService"),
}

# serving.kserve.io/deploymentMode: KServe >= 0.16 names RawDeployment `Standard` (the old name is a
# legacy alias it still accepts; KServe before 0.16 knows only RawDeployment).
DEPLOYMENT_MODES = {"Standard", "RawDeployment", "Serverless"}

KUBECTL = shutil.which("kubectl")
needs_kubectl = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: `kubectl kustomize` builds the manifests (install kubectl >= 1.27 to run these tests)"
)


def _tool(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else shutil.which(name)


@functools.cache
def build(kustomization: str) -> str:
    result = subprocess.run([KUBECTL, "kustomize", str(MANIFESTS / kustomization)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl kustomize manifests/{kustomization} failed:\n{result.stderr}"
    return result.stdout


def objects(kustomization: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(build(kustomization)) if d]


def find(kustomization: str, kind: str, name: str | None = None) -> list[dict]:
    return [o for o in objects(kustomization) if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


@functools.cache
def pipeline_defaults() -> dict:
    spec = next(yaml.safe_load_all(COMPILED.read_text()))
    # by short name (pvc_name): the compiled form's names carry a phase prefix (pipelines/form.py)
    return {short_name(name): p.get("defaultValue") for name, p in spec["root"]["inputDefinitions"]["parameters"].items()}


def test_the_expected_kustomizations_exist():
    assert {"base", "secret", "loader", "pipeline-server", "model-serving", "rbac"} <= set(KUSTOMIZATIONS)
    assert set(OVERLAYS) == {"overlays/openshift-ai", "overlays/kind"}


@needs_kubectl
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_kustomization_builds(kustomization):
    built = objects(kustomization)
    assert built, f"manifests/{kustomization} builds to nothing"
    for obj in built:
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "socratic-sdg", obj["metadata"]["name"]
        known = obj["apiVersion"] in CORE_GROUPS or (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS
        assert known, f"{obj['kind']} {obj['apiVersion']}: add it to CORE_GROUPS or CUSTOM_KINDS (and check it below)"


@needs_kubectl
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_core_kinds_validate_strictly(kustomization, version, tmp_path):
    validator = _tool("kubernetes-validate")
    if validator is None:
        pytest.skip("kubernetes-validate is not installed (pip install kubernetes-validate)")
    path = tmp_path / "built.yaml"
    path.write_text(build(kustomization))
    command = [validator, "--strict"] + ([] if version == "latest" else ["-k", version]) + [str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"kubernetes-validate --strict on manifests/{kustomization}:\n{output}"
    # A core kind without a schema would only warn: require an explicit pass for each one.
    for obj in objects(kustomization):
        name = f"{obj['kind'].lower()}/{obj['metadata']['name']}"
        if obj["apiVersion"] in CORE_GROUPS:
            assert f"passed for resource {name}" in output, f"{name} was not validated:\n{output}"
        else:
            assert f"Couldn't find schema for kind {obj['kind']}" in output


# ------------------------------------------------------------------ what must agree with the pipeline


@needs_kubectl
def test_pvc_secret_and_loader_match_the_pipeline_defaults():
    from socratic_sdg.pipelines.socratic_sdg_pipeline import DATA_MOUNT_PATH, LLM_SECRET_KEYS, LLM_SECRET_OPTIONAL_KEYS

    defaults = pipeline_defaults()
    (pvc,) = find("base", "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == defaults["pvc_name"]
    assert "storageClassName" not in pvc["spec"], "base uses the cluster's default storage class"

    (secret,) = find("secret", "Secret")
    assert secret["metadata"]["name"] == defaults["llm_secret_name"]
    assert set(secret["stringData"]) == set(LLM_SECRET_KEYS + LLM_SECRET_OPTIONAL_KEYS)
    assert secret["stringData"]["LLM_API_BASE"].endswith("/v1")
    assert secret["stringData"]["LLM_API_KEY"] == "replace-me", "the template must never hold a real key"

    (loader,) = find("loader", "Pod")
    (volume,) = loader["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == defaults["pvc_name"]
    (mount,) = loader["spec"]["containers"][0]["volumeMounts"]
    assert mount["mountPath"] == DATA_MOUNT_PATH
    assert defaults["convert_input_dir"].startswith(DATA_MOUNT_PATH + "/")


@needs_kubectl
@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_pods_are_restricted_and_bounded(kustomization):
    for pod in find(kustomization, "Pod"):
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["restartPolicy"] == "Never"
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            assert not container["image"].endswith(":latest") and ":" in container["image"].rsplit("/", 1)[-1]
            # tar is what `kubectl cp`, `oc rsync` and the documented pipe need: UBI (not ubi-minimal) has it.
            assert "ubi-minimal" not in container["image"]


@needs_kubectl
def test_openshift_ai_overlay_has_pipeline_server_model_and_rbac_but_never_the_secret():
    from socratic_sdg.deploy import submit

    overlay = "overlays/openshift-ai"
    namespace = yaml.safe_load((MANIFESTS / overlay / "kustomization.yaml").read_text())["namespace"]
    assert {o["metadata"].get("namespace") for o in objects(overlay)} == {namespace}
    assert not find(overlay, "Secret"), "re-applying the overlay must not overwrite the real llm-endpoint Secret"
    assert not find(overlay, "Namespace")
    assert find(overlay, "PersistentVolumeClaim", pipeline_defaults()["pvc_name"])

    (dspa,) = find(overlay, "DataSciencePipelinesApplication")
    assert dspa["metadata"]["name"] == submit.DEFAULT_DSPA  # its route ds-pipeline-dspa is what submit looks for
    spec = dspa["spec"]
    assert spec["dspVersion"] == "v2" and spec["apiServer"]["deploy"] is True and spec["apiServer"]["enableOauth"] is True
    assert spec["database"]["mariaDB"]["deploy"] is True
    assert list(spec["objectStorage"]) == ["externalStorage"]
    credentials = spec["objectStorage"]["externalStorage"]["s3CredentialsSecret"]
    assert credentials == {"secretName": "socratic-sdg-pipelines-s3", "accessKey": "AWS_ACCESS_KEY_ID", "secretKey": "AWS_SECRET_ACCESS_KEY"}

    (role,) = find(overlay, "Role", "socratic-sdg-submitter")
    (binding,) = find(overlay, "RoleBinding", "socratic-sdg-submitter")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "socratic-sdg-submitter", "namespace": namespace}]
    assert find(overlay, "ServiceAccount", "socratic-sdg-submitter")


def allows(rules: list[dict], verb: str, group: str, resource: str, name: str | None = None) -> bool:
    """Kubernetes RBAC for one request: some rule matches the group, resource (or resource/subresource),
    verb and, when the rule names resources, the object's name (no wildcards in our Roles)."""
    return any(
        group in rule.get("apiGroups", []) and resource in rule.get("resources", []) and verb in rule.get("verbs", [])
        and (not rule.get("resourceNames") or name in rule["resourceNames"])
        for rule in rules
    )


@needs_kubectl
@pytest.mark.parametrize("kustomization", ["rbac", "overlays/openshift-ai"])
def test_the_built_submitter_role_lets_submit_through_old_and_new_pipeline_servers(kustomization):
    """What `socratic-sdg submit` asks of the cluster, checked against the kustomize output.

    DSPO >= 2.18 puts the pipeline API behind kube-rbac-proxy: every GET needs `get` and every POST
    `create` on `datasciencepipelinesapplications/api` of that DSPA (by name). Older operators put
    an OAuth proxy in front that let in whoever may `get` the route ds-pipeline-<dspa>.
    """
    from socratic_sdg.deploy import submit

    (role,) = find(kustomization, "Role", "socratic-sdg-submitter")
    rules = role["rules"]
    dspa = submit.DEFAULT_DSPA
    if kustomization == "overlays/openshift-ai":
        (built_dspa,) = find(kustomization, "DataSciencePipelinesApplication")
        assert built_dspa["metadata"]["name"] == dspa
    # finding the server (submit.Cluster.pipeline_server) and the model (--isvc)
    assert allows(rules, "get", "route.openshift.io", "routes", f"ds-pipeline-{dspa}")
    assert allows(rules, "get", "route.openshift.io", "routes", f"ds-pipeline-ui-{dspa}")
    assert allows(rules, "list", submit.DSPA_GROUP, submit.DSPA_PLURAL)
    assert allows(rules, "get", submit.ISVC_GROUP, submit.ISVC_PLURAL, "granite")
    secret = pipeline_defaults()["llm_secret_name"]
    assert allows(rules, "get", "", "secrets", secret) and allows(rules, "patch", "", "secrets", secret)
    assert not allows(rules, "get", "", "secrets", "another-secret"), "only the endpoint Secret"
    # the pipeline API through kube-rbac-proxy (DSPO >= 2.18): GET -> get, POST -> create
    api = f"{submit.DSPA_PLURAL}/api"
    assert allows(rules, "get", submit.DSPA_GROUP, api, dspa), "GET /apis/v2beta1/... would be 403"
    assert allows(rules, "create", submit.DSPA_GROUP, api, dspa), "POST (upload, create run) would be 403"
    assert not allows(rules, "delete", submit.DSPA_GROUP, api, dspa), "submit never deletes: do not grant it"
    assert not allows(rules, "get", submit.DSPA_GROUP, api, "another-dspa"), "only the project's pipeline server, by name"
    # the route rule stays for operators older than 2.18
    assert allows(rules, "get", "route.openshift.io", "routes", f"ds-pipeline-{dspa}")


@needs_kubectl
def test_the_inference_service_runs_on_the_vllm_runtime_and_serves_its_own_name():
    (runtime,) = find("model-serving", "ServingRuntime")
    (isvc,) = find("model-serving", "InferenceService")
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    assert re.match(r"^(oci|s3|pvc|hf|https?)://", model["storageUri"])
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"
    assert {"--model=/mnt/models", "--served-model-name={{.Name}}", "--port=8080"} <= set(container["args"])
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert not container["image"].endswith(":latest")
    resources = model["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"], "extended resources need request == limit"
    # KServe >= 0.16 calls RawDeployment `Standard` and still accepts the old name (which older
    # KServe, as in OpenShift AI 2.x, needs): accept both, and Serverless (Knative).
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] in DEPLOYMENT_MODES


def test_the_inference_service_notes_the_deployment_mode_alias_and_modelcar():
    """RawDeployment is the legacy alias of Standard (KServe 0.16); an oci:// storageUri needs modelcar support."""
    isvc_text = (MANIFESTS / "model-serving" / "inferenceservice.yaml").read_text()
    (isvc,) = [d for d in yaml.safe_load_all(isvc_text) if d]
    mode = isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"]
    if mode == "RawDeployment":
        comments = " ".join(line for line in isvc_text.splitlines() if line.lstrip().startswith("#"))
        assert "Standard" in comments and "0.16" in comments, "say that RawDeployment is the legacy alias of Standard (KServe 0.16)"
    for doc in ("kind.md", "openshift-ai.md"):
        assert "Standard" in (ROOT / "docs" / doc).read_text() and "RawDeployment" in (ROOT / "docs" / doc).read_text(), doc
    if isvc["spec"]["predictor"]["model"]["storageUri"].startswith("oci://"):
        kind_doc = (ROOT / "docs" / "kind.md").read_text()
        assert "enableModelcar" in kind_doc and "inferenceservice-config" in kind_doc, "plain KServe needs modelcar enabled for oci://"


@needs_kubectl
def test_kind_overlay_puts_our_objects_in_kfps_namespace_with_kinds_storage_class():
    overlay = "overlays/kind"
    built = objects(overlay)
    assert {o["metadata"]["namespace"] for o in built} == {"kubeflow"}
    assert not find(overlay, "Namespace"), "the kubeflow namespace is KFP's: `kubectl delete -k` must not remove it"
    assert {o["kind"] for o in built} == {"PersistentVolumeClaim", "Secret", "Pod"}
    (pvc,) = find(overlay, "PersistentVolumeClaim", pipeline_defaults()["pvc_name"])
    assert pvc["spec"]["storageClassName"] == "standard"
    (secret,) = find(overlay, "Secret", pipeline_defaults()["llm_secret_name"])
    assert secret["stringData"]["LLM_API_BASE"].startswith("http://") and secret["stringData"]["LLM_API_BASE"].endswith("/v1")
    (pod,) = find(overlay, "Pod")
    assert pod["spec"]["securityContext"]["runAsUser"] > 0  # plain Kubernetes assigns no UID; the UBI image's user is root


def test_docs_name_the_manifests_that_exist():
    """Every `manifests/...` path the docs mention exists (the docs are the way in)."""
    for doc in ("openshift-ai.md", "kind.md"):
        text = (ROOT / "docs" / doc).read_text()
        paths = set(re.findall(r"(?<![\w/])manifests/[\w./-]*[\w-]", text))  # not upstream URLs (.../pipelines/manifests/...)
        assert paths, doc
        for path in paths:
            assert (ROOT / path).exists(), f"docs/{doc} mentions {path}, which does not exist"
