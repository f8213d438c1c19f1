"""`socratic-sdg submit` (socratic_sdg/deploy/submit.py) against a fake cluster at the HTTP level.

One local HTTP server plays both the Kubernetes API (routes, DataSciencePipelinesApplications,
InferenceServices, Secrets, ConsoleLinks) and the KFP v2beta1 API behind the pipeline server's route;
the real kubernetes client and requests talk to it through a kubeconfig written for the test.
"""

import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from socratic_sdg.deploy import submit as sub

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "pipelines" / "socratic_sdg_pipeline.yaml"
TOKEN = "sha256~not-a-real-token-0123456789"
NS = "my-project"


class FakeCluster:
    """Kubernetes + KFP API on 127.0.0.1; state in plain dicts; every request recorded."""

    def __init__(self):
        self.requests: list[dict] = []
        self.token = TOKEN
        self.routes: dict[tuple[str, str], dict] = {}
        self.dspas: dict[str, list[str]] | None = {}  # namespace -> names; None = the CRD is not installed
        self.isvcs: dict[tuple[str, str], dict] = {}
        self.secrets: dict[tuple[str, str], dict] = {}
        self.console_links: dict[str, dict] = {}
        self.pipelines: list[dict] = []
        self.versions: dict[str, list[dict]] = {}
        self.experiments: list[dict] = []
        self.runs: list[dict] = []
        self.kfp_failure: tuple[int, dict, bytes] | None = None  # (status, headers, body) for every KFP call
        self.k8s_failure: int | None = None
        self._ids = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = urlsplit(self.path)
                record = {
                    "method": self.command,
                    "path": url.path,
                    "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                }
                fake.requests.append(record)
                status, headers, payload = fake.dispatch(record)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    # ---- helpers for tests
    def add_dspa(self, namespace=NS, name="dspa", route=True):
        self.dspas.setdefault(namespace, []).append(name)
        if route:
            self.routes[(namespace, f"ds-pipeline-{name}")] = {
                "metadata": {"name": f"ds-pipeline-{name}"},
                "spec": {"host": f"127.0.0.1:{self.server.server_port}"},  # no tls: http
            }

    def calls(self, method=None, prefix="", path=None):
        return [r for r in self.requests if (method is None or r["method"] == method) and r["path"].startswith(prefix) and (path is None or r["path"] == path)]

    def _id(self, kind):
        self._ids += 1
        return f"{kind}-{self._ids:04d}"

    # ---- the APIs
    def dispatch(self, r):
        if self.token is not None and r["headers"].get("authorization") != f"Bearer {self.token}":
            return _json(401, {"error_message": "Unauthorized", "code": 16})
        path, method = r["path"], r["method"]
        if path.startswith("/apis/v2beta1/"):
            if self.kfp_failure:
                return self.kfp_failure
            return self.kfp(method, path[len("/apis/v2beta1/") :], r)
        if self.k8s_failure:
            return _json(self.k8s_failure, {"kind": "Status", "code": self.k8s_failure, "reason": "Unauthorized"})
        return self.kube(method, path.strip("/").split("/"), r)

    def kube(self, method, parts, r):
        not_found = _json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})
        if parts[:3] == ["apis", "route.openshift.io", "v1"] and parts[5] == "routes":
            route = self.routes.get((parts[4], parts[6]))
            return _json(200, route) if route else not_found
        if parts[:3] == ["apis", sub.DSPA_GROUP, "v1"]:
            if self.dspas is None:
                return not_found
            items = [{"metadata": {"name": n, "namespace": parts[4]}} for n in self.dspas.get(parts[4], [])]
            return _json(200, {"apiVersion": f"{sub.DSPA_GROUP}/v1", "kind": "DataSciencePipelinesApplicationList", "items": items})
        if parts[:3] == ["apis", "serving.kserve.io", "v1beta1"]:
            isvc = self.isvcs.get((parts[4], parts[6]))
            return _json(200, isvc) if isvc else not_found
        if parts[:3] == ["apis", "console.openshift.io", "v1"]:
            link = self.console_links.get(parts[4])
            return _json(200, link) if link else not_found
        if parts[:2] == ["api", "v1"] and parts[4] == "secrets":
            namespace = parts[3]
            if method == "PATCH":
                secret = self.secrets.get((namespace, parts[5]))
                if secret is None:
                    return not_found
                secret.setdefault("stringData", {}).update(json.loads(r["body"])["stringData"])
                return _json(200, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": parts[5], "namespace": namespace}})
            if method == "POST":
                secret = json.loads(r["body"])
                self.secrets[(namespace, secret["metadata"]["name"])] = secret
                return _json(201, secret)
        return not_found

    def kfp(self, method, path, r):
        q = r["query"]
        if path == "healthz":
            return _json(200, {"multi_user": False})
        if path == "pipelines" and method == "GET":
            predicate = json.loads(q["filter"])["predicates"][0]
            assert predicate == {"operation": 1, "key": "display_name", "stringValue": predicate["stringValue"]}
            return _json(200, {"pipelines": [p for p in self.pipelines if p["display_name"] == predicate["stringValue"]]})
        if path in ("pipelines/upload", "pipelines/upload_version") and method == "POST":
            upload = _multipart(r)
            if path == "pipelines/upload":
                pipeline = {"pipeline_id": self._id("pipeline"), "name": q["name"], "display_name": q["display_name"], "description": q["description"]}
                self.pipelines.append(pipeline)
                # Like the KFP server: the first version is named after the pipeline and has its description.
                self.versions[pipeline["pipeline_id"]] = [{**pipeline, "pipeline_version_id": self._id("version"), "upload": upload}]
                return _json(200, pipeline)
            version = {
                "pipeline_id": q["pipelineid"],
                "pipeline_version_id": self._id("version"),
                "name": q["name"],
                "display_name": q["display_name"],
                "description": q["description"],
                "upload": upload,
            }
            self.versions[q["pipelineid"]].insert(0, version)
            return _json(200, {k: v for k, v in version.items() if k != "upload"})
        if path.startswith("pipelines/") and path.endswith("/versions") and method == "GET":
            versions = [{k: v for k, v in version.items() if k != "upload"} for version in self.versions.get(path.split("/")[1], [])]
            return _json(200, {"pipeline_versions": versions, "total_size": len(versions)})
        if path == "experiments" and method == "GET":
            name = json.loads(q["filter"])["predicates"][0]["stringValue"]
            return _json(200, {"experiments": [e for e in self.experiments if e["display_name"] == name]})
        if path == "experiments" and method == "POST":
            experiment = {**json.loads(r["body"]), "experiment_id": self._id("experiment")}
            self.experiments.append(experiment)
            return _json(200, experiment)
        if path == "runs" and method == "POST":
            run = {**json.loads(r["body"]), "run_id": self._id("run"), "state": "PENDING"}
            self.runs.append(run)
            return _json(200, run)
        return _json(404, {"error_message": f"no route {method} {path}"})


def _json(status, body):
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _multipart(r) -> dict:
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + r["headers"]["content-type"].encode() + b"\r\n\r\n" + r["body"])
    parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
    upload = parts["uploadfile"]
    return {"filename": upload.get_filename(), "content": upload.get_payload(decode=True)}


@pytest.fixture
def fake():
    with FakeCluster() as cluster:
        yield cluster


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch):
    for name in ("KFP_TOKEN", "KUBECONFIG", "LLM_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def kubeconfig(fake, tmp_path) -> Path:
    """What `oc login` + `oc project my-project` leave behind, pointing at the fake API server."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": fake.url}}],
                "users": [{"name": "me", "user": {"token": TOKEN}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "me", "namespace": NS}}],
                "current-context": "fake",
            }
        )
    )
    return path


def run_submit(kubeconfig, **kwargs):
    lines: list[str] = []
    result = sub.submit(sub.SubmitOptions(kubeconfig=str(kubeconfig), **kwargs), progress=lines.append)
    return result, lines


def test_first_submit_uploads_the_committed_pipeline_and_starts_a_run(fake, kubeconfig):
    fake.add_dspa()
    result, lines = run_submit(kubeconfig, params={"generate_max_chunks": "20", "convert_do_ocr": "true", "export_system_prompt": "42"})

    # The route was read in the kubeconfig's namespace, every call carried the kubeconfig's token.
    assert fake.calls("GET", f"/apis/route.openshift.io/v1/namespaces/{NS}/routes/ds-pipeline-dspa")
    assert all(r["headers"]["authorization"] == f"Bearer {TOKEN}" for r in fake.requests)
    # The pipeline went up as the committed YAML, byte for byte, under its own name.
    (upload,) = fake.calls("POST", path="/apis/v2beta1/pipelines/upload")
    assert upload["query"]["name"] == upload["query"]["display_name"] == "socratic-sdg"
    assert fake.versions[result.pipeline_id][0]["upload"] == {"filename": "socratic_sdg_pipeline.yaml", "content": COMMITTED.read_bytes()}
    # The run references that version, in a new socratic-sdg experiment, with typed parameters.
    (run,) = fake.runs
    assert run["pipeline_version_reference"] == {"pipeline_id": result.pipeline_id, "pipeline_version_id": result.version_id}
    assert run["runtime_config"]["parameters"] == {"phase_03_generate_opt_max_chunks": 20, "phase_01_convert_opt_do_ocr": True,
                                                   "phase_05_export_opt_system_prompt": "42"}  # the pipeline's own (dashboard) names
    assert [e["display_name"] for e in fake.experiments] == ["socratic-sdg"] and run["experiment_id"] == result.experiment_id
    assert run["display_name"].startswith("socratic-sdg ")
    assert result.run_id == run["run_id"]
    assert result.run_url == f"{fake.url}/apis/v2beta1/runs/{result.run_id}"  # no UI route, no dashboard link
    assert any("pipeline socratic-sdg: uploaded" in line for line in lines)
    assert not any(TOKEN in line for line in lines)


def test_resubmitting_the_same_yaml_reuses_its_version_and_a_changed_yaml_adds_one(fake, kubeconfig, tmp_path):
    fake.add_dspa()
    first, _ = run_submit(kubeconfig)
    second, lines = run_submit(kubeconfig)
    assert len(fake.calls("POST", path="/apis/v2beta1/pipelines/upload")) == 1
    assert not fake.calls("POST", path="/apis/v2beta1/pipelines/upload_version")
    assert any("same content, reusing it" in line for line in lines)
    assert len(fake.runs) == 2 and len(fake.experiments) == 1  # the experiment is found the second time

    # A changed file becomes a new version of the same pipeline, named by its content hash.
    changed = tmp_path / "socratic_sdg_pipeline.yaml"
    changed.write_bytes(COMMITTED.read_bytes() + b"\n# changed\n")
    third, lines = run_submit(kubeconfig, pipeline_file=changed)
    (upload,) = fake.calls("POST", path="/apis/v2beta1/pipelines/upload_version")
    assert upload["query"]["pipelineid"] == first.pipeline_id
    assert upload["query"]["name"] == third.version_name == f"socratic-sdg-{sub.load_package(changed).digest}"
    assert third.version_id not in (first.version_id, second.version_id)
    assert fake.runs[-1]["pipeline_version_reference"]["pipeline_version_id"] == third.version_id
    run_submit(kubeconfig, pipeline_file=changed)
    assert len(fake.calls("POST", path="/apis/v2beta1/pipelines/upload_version")) == 1

    with pytest.raises(sub.SubmitError, match="already has a version named"):
        run_submit(kubeconfig, pipeline_file=changed, version_name=third.version_name)


def test_parameters_come_from_a_yaml_file_and_flags_win(fake, kubeconfig, tmp_path):
    fake.add_dspa()
    params_file = tmp_path / "params.yaml"
    params_file.write_text("generate_max_chunks: 5\nexport_validation_ratio: 0.2\nphase_02_chunk_opt_method: hybrid\nfilter_require_question: false\n")
    flags = sub.parse_param_flags(["phase_03_generate_opt_max_chunks=50", "export_seed=7"])  # the dashboard name wins over the file's short one
    run_submit(kubeconfig, params_file=params_file, params=flags)
    assert fake.runs[0]["runtime_config"]["parameters"] == {
        "phase_03_generate_opt_max_chunks": 50,
        "phase_05_export_opt_validation_ratio": 0.2,
        "phase_02_chunk_opt_method": "hybrid",
        "phase_04_filter_opt_require_question": False,
        "phase_05_export_opt_seed": 7,
    }
    nested = tmp_path / "nested.yaml"
    nested.write_text("parameters:\n  generate_max_chunks: 3\n")
    assert sub.load_params_file(nested) == {"generate_max_chunks": 3}


def test_unknown_parameters_are_rejected_with_the_closest_name_before_any_request(fake, kubeconfig):
    fake.add_dspa()
    with pytest.raises(sub.SubmitError) as error:
        run_submit(kubeconfig, params={"max_chunks": "5", "generate_max_chunks": "5"})
    message = str(error.value)
    assert message == ("unknown pipeline parameter max_chunks (did you mean generate_max_chunks?); the parameters are listed in docs/parameters.md")
    with pytest.raises(sub.SubmitError) as error:  # a dashboard name gets the dashboard name
        run_submit(kubeconfig, params={"phase_03_generate_man_max_chunks": "5"})
    assert "unknown pipeline parameter phase_03_generate_man_max_chunks (did you mean phase_03_generate_opt_max_chunks?)" in str(error.value)
    with pytest.raises(sub.SubmitError, match="parameter phase_03_generate_opt_max_chunks is given twice"):
        run_submit(kubeconfig, params={"generate_max_chunks": "5", "phase_03_generate_opt_max_chunks": "5"})
    assert fake.requests == []


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("generate_max_chunks", "ten", "expects an integer"),
        ("generate_max_chunks", "1.5", "expects an integer"),
        ("export_validation_ratio", "a lot", "expects a number"),
        ("convert_do_ocr", "maybe", "expects true or false"),
    ],
)
def test_wrongly_typed_parameters_are_rejected(fake, kubeconfig, name, value, expected):
    with pytest.raises(sub.SubmitError, match=f"parameter {name} {expected}"):
        run_submit(kubeconfig, params={name: value})
    assert fake.requests == []


def test_typed_values_from_a_file_are_checked_too():
    package = sub.load_package(COMMITTED)
    assert sub.check_parameters(package, {"generate_max_chunks": 3.0, "export_validation_ratio": 1, "phase_05_export_man_license": 1.5}) == {
        "phase_03_generate_opt_max_chunks": 3,
        "phase_05_export_opt_validation_ratio": 1.0,
        "phase_05_export_man_license": "1.5",
    }
    # a pipeline compiled before the dashboard names takes its own names
    assert sub.pipeline_names(["generate_max_chunks", "phase_00_cluster_man_pvc_name"]) == {
        "generate_max_chunks": "generate_max_chunks",
        "pvc_name": "phase_00_cluster_man_pvc_name",
        "phase_00_cluster_man_pvc_name": "phase_00_cluster_man_pvc_name",
    }
    for bad in ({"generate_max_chunks": True}, {"convert_do_ocr": 1}, {"pvc_name": ["a"]}):
        with pytest.raises(sub.SubmitError, match="expects"):
            sub.check_parameters(package, bad)


def test_param_flags_must_be_key_value():
    assert sub.parse_param_flags(["a=b=c", "empty="]) == {"a": "b=c", "empty": ""}
    with pytest.raises(sub.SubmitError, match="is not KEY=VALUE"):
        sub.parse_param_flags(["generate_max_chunks"])


def test_without_a_kubeconfig_the_error_says_oc_login(tmp_path):
    with pytest.raises(sub.SubmitError) as error:
        sub.submit(sub.SubmitOptions(kubeconfig=str(tmp_path / "missing")), progress=lambda _: None)
    assert "oc login" in str(error.value) and "--host" in str(error.value)
    assert "\n" not in str(error.value)


def test_a_kubeconfig_without_namespace_or_token_says_what_to_do(fake, kubeconfig):
    config = yaml.safe_load(kubeconfig.read_text())
    del config["contexts"][0]["context"]["namespace"]
    kubeconfig.write_text(yaml.safe_dump(config))
    with pytest.raises(sub.SubmitError, match="pass --namespace or select the project with `oc project NAME`"):
        run_submit(kubeconfig)

    fake.add_dspa()
    config["users"][0]["user"] = {"username": "me", "password": "x"}  # basic auth: no bearer token
    kubeconfig.write_text(yaml.safe_dump(config))
    fake.token = None  # the fake accepts no Authorization header at all (basic auth is sent instead)
    with pytest.raises(sub.SubmitError, match="no bearer token .*oc login"):
        run_submit(kubeconfig, namespace=NS)


def test_no_pipeline_server_says_how_to_create_one(fake, kubeconfig):
    with pytest.raises(sub.SubmitError) as error:
        run_submit(kubeconfig)
    message = str(error.value)
    assert message.startswith(f"no pipeline server in namespace {NS}:")
    assert "Configure pipeline server" in message and "manifests/pipeline-server" in message

    fake.dspas = None
    with pytest.raises(sub.SubmitError, match="no DataSciencePipelinesApplication API .*--host"):
        run_submit(kubeconfig)


def test_the_one_pipeline_server_is_found_whatever_its_name(fake, kubeconfig):
    fake.add_dspa(name="pipelines")
    result, lines = run_submit(kubeconfig)
    assert result.run_id and "route ds-pipeline-pipelines" in lines[0]

    fake.add_dspa(name="other")
    with pytest.raises(sub.SubmitError, match="choose one with --dspa: other, pipelines"):
        run_submit(kubeconfig)

    fake.add_dspa(name="dspa", route=False)
    with pytest.raises(sub.SubmitError, match="pipeline server dspa .* has no route ds-pipeline-dspa yet"):
        run_submit(kubeconfig)


def test_an_expired_cluster_login_says_oc_login(fake, kubeconfig):
    fake.k8s_failure = 401
    with pytest.raises(sub.SubmitError) as error:
        run_submit(kubeconfig)
    assert "HTTP 401" in str(error.value) and "oc login" in str(error.value) and TOKEN not in str(error.value)
    fake.k8s_failure = 403
    with pytest.raises(sub.SubmitError, match=f"you may not read route ds-pipeline-dspa in namespace {NS} \\(HTTP 403\\)"):
        run_submit(kubeconfig)


@pytest.mark.parametrize(
    "status, headers, body, expected",
    [
        (401, {"Content-Type": "application/json"}, b'{"error_message": "Unauthorized"}', "did not accept the token (HTTP 401)"),
        (403, {"Content-Type": "text/html"}, b"<html>Forbidden</html>", "denied access (HTTP 403)"),
        (302, {"Location": "https://oauth-openshift.apps/oauth/authorize"}, b"", "did not accept the token (HTTP 302, a login page)"),
        (200, {"Content-Type": "text/html; charset=utf-8"}, b"<html>Log in with OpenShift</html>", "a login page"),
        (500, {"Content-Type": "application/json"}, json.dumps({"error_message": f"boom for {TOKEN}"}).encode(), "HTTP 500: boom for ***"),
    ],
)
def test_pipeline_server_refusals_are_one_clear_line_without_the_token(fake, kubeconfig, status, headers, body, expected):
    fake.add_dspa()
    fake.kfp_failure = (status, headers, body)
    with pytest.raises(sub.SubmitError) as error:
        run_submit(kubeconfig)
    assert expected in str(error.value)
    assert TOKEN not in str(error.value) and "\n" not in str(error.value)
    assert not fake.calls("POST")


def test_an_unreachable_pipeline_server_names_the_url(kubeconfig):
    with pytest.raises(sub.SubmitError, match="cannot reach the pipeline server at http://127.0.0.1:9"):
        sub.submit(sub.SubmitOptions(host="http://127.0.0.1:9", token="t", timeout=5), progress=lambda _: None)


def test_isvc_points_the_endpoint_secret_at_the_inference_service(fake, kubeconfig, monkeypatch):
    fake.add_dspa()
    fake.isvcs[(NS, "granite")] = {
        "metadata": {"name": "granite"},
        "status": {
            "url": "https://granite-my-project.apps.example.com",
            "address": {"url": "http://granite-predictor.my-project.svc.cluster.local"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    fake.secrets[(NS, "llm-endpoint")] = {"stringData": {"LLM_API_BASE": "http://old/v1", "LLM_API_KEY": "keep-me", "LLM_MODEL": "old"}}
    result, lines = run_submit(kubeconfig, isvc="granite")
    assert fake.secrets[(NS, "llm-endpoint")]["stringData"] == {
        "LLM_API_BASE": "http://granite-predictor.my-project.svc.cluster.local/v1",
        "LLM_API_KEY": "keep-me",
        "LLM_MODEL": "granite",
    }
    assert result.run_id and any("Secret llm-endpoint: updated" in line for line in lines)
    assert not any("keep-me" in line for line in lines)

    # A Secret named by the llm_secret_name parameter that does not exist yet is created.
    monkeypatch.setenv("LLM_API_KEY", "from-env")
    run_submit(kubeconfig, isvc="granite", params={"llm_secret_name": "granite-endpoint"})
    created = fake.secrets[(NS, "granite-endpoint")]
    assert created["stringData"] == {
        "LLM_API_BASE": "http://granite-predictor.my-project.svc.cluster.local/v1",
        "LLM_MODEL": "granite",
        "LLM_API_KEY": "from-env",
    }
    assert fake.runs[-1]["runtime_config"]["parameters"] == {"phase_00_cluster_man_llm_secret_name": "granite-endpoint"}
    # ... and so by its dashboard name
    run_submit(kubeconfig, isvc="granite", params={"phase_00_cluster_man_llm_secret_name": "other-endpoint"})
    assert fake.secrets[(NS, "other-endpoint")]["stringData"]["LLM_MODEL"] == "granite"


def test_isvc_that_is_missing_or_not_ready_stops_before_anything_is_written(fake, kubeconfig):
    fake.add_dspa()
    with pytest.raises(sub.SubmitError, match=f"InferenceService granite not found in namespace {NS}"):
        run_submit(kubeconfig, isvc="granite")
    fake.isvcs[(NS, "granite")] = {"status": {"conditions": [{"type": "Ready", "status": "False", "message": "Predictor pod is pulling the model"}]}}
    with pytest.raises(sub.SubmitError, match="is not ready \\(Predictor pod is pulling the model\\)"):
        run_submit(kubeconfig, isvc="granite")
    assert not fake.calls("POST") and not fake.calls("PATCH")


def test_standalone_kfp_with_host_needs_no_kubeconfig_and_links_the_kfp_ui(fake, tmp_path):
    """The kind setup: `kubectl port-forward svc/ml-pipeline-ui 8080:80`, no auth in front of KFP."""
    fake.token = None
    result = sub.submit(sub.SubmitOptions(host=fake.url + "/", kubeconfig=str(tmp_path / "missing")), progress=lambda _: None)
    assert "authorization" not in fake.requests[0]["headers"]
    assert result.run_url == f"{fake.url}/#/runs/details/{result.run_id}"
    assert not fake.calls(prefix="/api/") and not fake.calls(prefix="/apis/route.openshift.io")


def test_the_kubeconfig_token_is_never_sent_to_a_host_given_by_hand(fake, kubeconfig):
    fake.isvcs[(NS, "granite")] = {"status": {"address": {"url": "http://g"}, "conditions": [{"type": "Ready", "status": "True"}]}}
    fake.token = None
    run_submit(kubeconfig, host=fake.url, isvc="granite", dry_run=True)
    assert fake.calls(prefix="/apis/serving.kserve.io")[0]["headers"]["authorization"] == f"Bearer {TOKEN}"  # the cluster: yes
    assert all("authorization" not in r["headers"] for r in fake.calls(prefix="/apis/v2beta1"))  # the --host: no


def test_token_flag_and_kfp_token_env_win_over_the_kubeconfig(fake, kubeconfig, monkeypatch):
    fake.token = "from-env"
    monkeypatch.setenv("KFP_TOKEN", "from-env")
    result, _ = run_submit(kubeconfig, host=fake.url)
    assert result.run_id
    fake.token = "from-flag"
    result, _ = run_submit(kubeconfig, host=fake.url, token="from-flag")
    assert result.run_id


def test_dry_run_resolves_everything_and_changes_nothing(fake, kubeconfig):
    fake.add_dspa()
    fake.isvcs[(NS, "granite")] = {"status": {"address": {"url": "http://g"}, "conditions": [{"type": "Ready", "status": "True"}]}}
    result, lines = run_submit(kubeconfig, dry_run=True, isvc="granite", params={"generate_max_chunks": "2"})
    assert result.run_id is None and result.parameters == {"phase_03_generate_opt_max_chunks": 2}
    assert {r["method"] for r in fake.requests} == {"GET"}
    assert any(line.startswith("dry run: would upload") for line in lines)


def test_run_url_points_at_the_openshift_ai_dashboard_when_it_is_known(fake, kubeconfig):
    fake.add_dspa()
    fake.console_links["rhodslink"] = {"spec": {"href": "https://rhods-dashboard.apps.example.com/"}}
    result, _ = run_submit(kubeconfig)
    assert result.run_url == f"https://rhods-dashboard.apps.example.com/experiments/{NS}/{result.experiment_id}/runs/{result.run_id}"

    fake.routes[(NS, "ds-pipeline-ui-dspa")] = {"spec": {"host": "ui.apps.example.com", "tls": {"termination": "reencrypt"}}}
    result, _ = run_submit(kubeconfig)
    assert result.run_url == f"https://ui.apps.example.com/#/runs/details/{result.run_id}"


def test_compile_uploads_a_fresh_compile(fake, kubeconfig, monkeypatch):
    monkeypatch.delenv("SOCRATIC_SDG_IMAGE", raising=False)
    monkeypatch.delenv("SOCRATIC_SDG_CONVERT_IMAGE", raising=False)
    fake.add_dspa()
    result, _ = run_submit(kubeconfig, compile=True)
    assert fake.versions[result.pipeline_id][0]["upload"]["content"] == COMMITTED.read_bytes()


def test_a_file_that_is_not_a_compiled_pipeline_is_refused(tmp_path):
    other = tmp_path / "x.yaml"
    other.write_text("apiVersion: v1\nkind: ConfigMap\n")
    with pytest.raises(sub.SubmitError, match="not a compiled KFP pipeline"):
        sub.load_package(other)
    with pytest.raises(sub.SubmitError, match="not found: run `socratic-sdg compile`"):
        sub.load_package(tmp_path / "missing.yaml")
