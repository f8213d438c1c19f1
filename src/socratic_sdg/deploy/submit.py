"""`socratic-sdg submit`: upload the compiled pipeline to a pipeline server and start a run.

    options = SubmitOptions(namespace="my-project", params={"generate_max_chunks": "20"})  # short or dashboard names
    result = submit(options, progress=print)      # -> SubmitResult(run_id, run_url, pipeline_id, version_id, ...)

What it does, in order:

1. reads the pipeline package (the committed ``socratic_sdg_pipeline.yaml``, another file, or a fresh
   compile) and checks the run parameters against its root parameters, given by their dashboard
   names or short names (unknown names and wrong types are rejected before anything is sent);
2. finds the pipeline server: ``--host``, or the Route ``ds-pipeline-<dspa>`` of the project's
   DataSciencePipelinesApplication (OpenShift AI), read with the user's kubeconfig (``oc login``);
3. optionally (``isvc``) reads an InferenceService's in-cluster URL and writes it, with the model
   name, into the endpoint Secret the pipeline reads (LLM_API_BASE, LLM_MODEL; the key is kept);
4. through the KFP v2beta1 REST API: uploads the pipeline, or a new version of it when the
   content changed (versions are named by content hash, so re-submitting the same YAML reuses
   one), finds or creates the experiment, and starts the run.

The bearer token comes from ``token``, else ``$KFP_TOKEN``, else the kubeconfig (``oc login``);
it is sent only in Authorization headers and never printed. Problems a user can fix raise
``SubmitError`` with one sentence naming the fix.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml
from socratic_sdg.errors import SocraticSdgError
from socratic_sdg.options import option
from socratic_sdg.pipelines.form import short_name

# The committed compiled pipeline, shipped in the socratic_sdg.pipelines package (found without
# importing it, so submit does not load kfp until it compiles).
PIPELINE_FILE = Path(importlib.util.find_spec("socratic_sdg.pipelines").origin).with_name("socratic_sdg_pipeline.yaml")
DEFAULT_DSPA = "dspa"  # the name the OpenShift AI dashboard gives the pipeline server
DEFAULT_EXPERIMENT = "socratic-sdg"
API = "/apis/v2beta1"
DSPA_GROUP, DSPA_VERSION, DSPA_PLURAL = "datasciencepipelinesapplications.opendatahub.io", "v1", "datasciencepipelinesapplications"
ISVC_GROUP, ISVC_VERSION, ISVC_PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
# ConsoleLinks that OpenShift AI / Open Data Hub create for their dashboard (cluster-scoped).
DASHBOARD_CONSOLE_LINKS = ("rhodslink", "odhlink")
CREATE_PIPELINE_SERVER = (
    "create one in the OpenShift AI dashboard (Data Science Pipelines > Configure pipeline server) "
    "or with `oc apply -k manifests/pipeline-server -n {ns}`"
)
LOGIN_HINT = "run `oc login` (OpenShift console: your name > Copy login command)"


class SubmitError(SocraticSdgError):
    """A problem the user can fix (not logged in, no pipeline server, bad parameter, HTTP 401/403...)."""


@dataclasses.dataclass
class SubmitOptions:
    namespace: str | None = option(None, "Project of the pipeline server (default: the current `oc project`).", flag=("-n", "--namespace"))
    dspa: str = option(DEFAULT_DSPA, "Pipeline server (DataSciencePipelinesApplication) whose route ds-pipeline-NAME is the API; the dashboard names it dspa.")
    host: str | None = option(
        None, "Pipeline server URL instead of the route lookup; no kubeconfig needed (standalone KFP: http://localhost:8080 with a port-forward; "
        "a DSPA route also needs KFP_TOKEN=$(oc whoami -t), the kubeconfig token is never sent to a --host).")
    token: str | None = option(
        None, "Bearer token (default: $KFP_TOKEN, then the token of your `oc login`); prefer KFP_TOKEN: flags show in the process list.")
    context: str | None = option(None, "Kubeconfig context (default: the current one; the kubeconfig is $KUBECONFIG or ~/.kube/config).")
    pipeline_file: Path | None = option(None, "Compiled pipeline YAML to upload (default: the committed pipelines/socratic_sdg_pipeline.yaml).", parse=Path)
    compile: bool = option(False, "Compile the pipeline now and upload that (honours SOCRATIC_SDG_IMAGE and SOCRATIC_SDG_CONVERT_IMAGE).")
    pipeline_name: str | None = option(None, "Pipeline name on the server (default: the compiled name, socratic-sdg).")
    version_name: str | None = option(None, "Name for a new pipeline version (default: NAME-<content hash>, and the same content reuses its version).")
    experiment: str = option(DEFAULT_EXPERIMENT, "Experiment to run in, created if missing.")
    run_name: str | None = option(None, "Run name (default: socratic-sdg <UTC date and time>).")
    params: dict[str, Any] = option(
        None, "A pipeline parameter by short or dashboard name (repeatable; names and types in docs/parameters.md); wins over --params-file.", flag="--param",
        metavar="KEY=VALUE", repeat=True, parse=lambda pairs: parse_param_flags(pairs))
    params_file: Path | None = option(None, "YAML file mapping pipeline parameter names (short or dashboard) to values.", parse=Path)
    isvc: str | None = option(
        None, "Before the run, write this InferenceService's in-cluster URL (+ /v1) and name into the endpoint Secret (llm_secret_name) as "
        "LLM_API_BASE and LLM_MODEL; LLM_API_KEY is kept.", metavar="NAME")
    ca_bundle: str | None = option(None, "CA file for the pipeline server's TLS certificate (default: system CAs or $REQUESTS_CA_BUNDLE).")
    insecure_skip_tls_verify: bool = option(False, "Do not verify the pipeline server's TLS certificate (test clusters only).")
    dashboard_url: str | None = option(None, "OpenShift AI dashboard URL for the printed run link (default: found from the cluster when readable).")
    dry_run: bool = option(False, "Find the server and the model, check the login and the parameters; upload and start nothing.")
    kubeconfig: str | None = None  # default $KUBECONFIG, then ~/.kube/config
    timeout: float = 60.0  # seconds per HTTP request

    def __post_init__(self) -> None:
        if self.params is None:
            object.__setattr__(self, "params", {})


@dataclasses.dataclass
class SubmitResult:
    run_id: str | None
    run_url: str | None
    pipeline_id: str | None
    version_id: str | None
    host: str
    parameters: dict[str, Any]
    experiment_id: str | None = None
    pipeline_name: str = ""
    version_name: str = ""


# ---------------------------------------------------------------- pipeline package and parameters


@dataclasses.dataclass
class PipelinePackage:
    path: Path
    content: bytes
    name: str
    parameters: dict[str, dict]  # root input parameters: name -> {parameterType, defaultValue, ...}
    description: str = ""

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.content).hexdigest()[:10]

    @property
    def upload_description(self) -> str:
        # The content hash also marks the version the server makes on the first upload (it copies
        # the description there), so that re-submitting the same file reuses it.
        return f"{self.description} [socratic-sdg submit, content {self.digest}]".strip()


def load_package(path: str | Path) -> PipelinePackage:
    path = Path(path)
    try:
        content = path.read_bytes()
        documents = [d for d in yaml.safe_load_all(content) if d]
    except FileNotFoundError:
        raise SubmitError(f"pipeline file {path} not found: run `socratic-sdg compile` or pass --pipeline-file") from None
    except yaml.YAMLError as exc:
        raise SubmitError(f"pipeline file {path} is not YAML: {str(exc).splitlines()[0]}") from None
    spec = next((d for d in documents if isinstance(d, dict) and "pipelineInfo" in d), None)
    if spec is None:
        raise SubmitError(f"{path} is not a compiled KFP pipeline (no pipelineInfo): compile it with `socratic-sdg compile`")
    parameters = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}) or {}
    info = spec["pipelineInfo"]
    return PipelinePackage(path=path, content=content, name=info["name"], parameters=parameters, description=info.get("description", ""))


def parse_param_flags(pairs: list[str]) -> dict[str, str]:
    """--param KEY=VALUE flags as strings; types are applied against the pipeline by check_parameters."""
    params: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SubmitError(f"--param {pair!r} is not KEY=VALUE (e.g. --param generate_max_chunks=20)")
        params[key.strip()] = value
    return params


def load_params_file(path: str | Path) -> dict[str, Any]:
    """A YAML mapping of parameter names to values (a top-level `parameters:` mapping also works)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SubmitError(f"parameters file {path} not found") from None
    except yaml.YAMLError as exc:
        raise SubmitError(f"parameters file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if isinstance(data, dict) and set(data) == {"parameters"} and isinstance(data["parameters"], dict):
        data = data["parameters"]
    if not isinstance(data, dict):
        raise SubmitError(f"parameters file {path} must be a mapping of parameter names to values (name: value per line)")
    return {str(k): v for k, v in data.items()}


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}
_TYPE_WORDS = {
    "STRING": "a string",
    "NUMBER_INTEGER": "an integer",
    "NUMBER_DOUBLE": "a number",
    "BOOLEAN": "true or false",
    "LIST": "a list (JSON or YAML)",
    "STRUCT": "a mapping (JSON or YAML)",
}


def _coerce(name: str, value: Any, ptype: str) -> Any:
    wrong = SubmitError(f"parameter {name} expects {_TYPE_WORDS.get(ptype, ptype)}, got {value!r}")
    if isinstance(value, str) and ptype != "STRING":
        text = value.strip()
        if ptype == "NUMBER_INTEGER":
            try:
                return int(text)
            except ValueError:
                raise wrong from None
        if ptype == "NUMBER_DOUBLE":
            try:
                return float(text)
            except ValueError:
                raise wrong from None
        if ptype == "BOOLEAN":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise wrong
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise wrong from None
    if ptype == "STRING":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise wrong
        return value if isinstance(value, str) else str(value)
    if ptype == "NUMBER_INTEGER":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and not value.is_integer()):
            raise wrong
        return int(value)
    if ptype == "NUMBER_DOUBLE":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong
        return float(value)
    if ptype == "BOOLEAN":
        if not isinstance(value, bool):
            raise wrong
        return value
    if ptype == "LIST" and not isinstance(value, list):
        raise wrong
    if ptype == "STRUCT" and not isinstance(value, dict):
        raise wrong
    return value


def check_parameter_names(names, valid) -> None:
    """Raise SubmitError naming every unknown parameter and the closest valid name for each."""
    import difflib

    unknown = sorted(set(names) - set(valid))
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
        hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
    raise SubmitError(
        f"unknown pipeline parameter{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; "
        "the parameters are listed in docs/parameters.md"
    )


def pipeline_names(parameters: Iterable[str]) -> dict[str, str]:
    """Every name a user may give a pipeline's parameter by -> the pipeline's own name: its dashboard name
    (phase_03_generate_opt_max_chunks) and its short name (generate_max_chunks)."""
    own = list(parameters)
    return {**{short_name(name): name for name in own}, **{name: name for name in own}}


def by_pipeline_name(values: dict[str, Any], parameters: Iterable[str]) -> dict[str, Any]:
    """``values`` given by short or dashboard name, keyed by the pipeline's own names (``parameters``);
    an unknown name, or one parameter given under both names, is a SubmitError."""
    names = pipeline_names(parameters)
    check_parameter_names(values, names)
    out: dict[str, Any] = {}
    for given, value in values.items():
        name = names[given]
        if name in out:
            raise SubmitError(f"parameter {name} is given twice ({short_name(name)} is its short name): give it once")
        out[name] = value
    return out


def check_parameters(package: PipelinePackage, values: dict[str, Any]) -> dict[str, Any]:
    """The run's arguments: ``values`` by short or dashboard name, keyed by the pipeline's names and typed
    as it declares them; unknown names are an error."""
    names = pipeline_names(package.parameters)
    check_parameter_names(values, names)
    typed = {given: _coerce(given, value, package.parameters[names[given]].get("parameterType", "STRING")) for given, value in values.items()}
    return by_pipeline_name(typed, package.parameters)


# ---------------------------------------------------------------- Kubernetes: login, route, InferenceService


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


class _Cluster:
    """The user's kubeconfig and the few objects submit reads or writes."""

    def __init__(self, options: SubmitOptions):
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        path = options.kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        self.configuration = client.Configuration()
        try:
            config.load_kube_config(config_file=path, context=options.context, client_configuration=self.configuration)
            contexts, active = config.list_kube_config_contexts(config_file=path)
            if options.context:
                active = next((c for c in contexts if c["name"] == options.context), active)
        except (ConfigException, FileNotFoundError, OSError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SubmitError(
                f"no usable Kubernetes login (kubeconfig {path}: {detail}): {LOGIN_HINT}, "
                "or pass --host and --token to reach a pipeline server directly"
            ) from None
        self.server = self.configuration.host
        self.namespace = (active or {}).get("context", {}).get("namespace")
        authorization = (self.configuration.api_key or {}).get("authorization", "")
        # Only a bearer token can go to the pipeline server (not basic auth, not a client certificate).
        self.token = authorization.split(" ", 1)[1].strip() if authorization.lower().startswith("bearer ") else None
        self.api_client = client.ApiClient(self.configuration)
        self.custom = client.CustomObjectsApi(self.api_client)
        self.core = client.CoreV1Api(self.api_client)

    def call(self, what: str, fn: Callable, *args, not_found: Any = SubmitError, **kwargs):
        """Run a client call; 404 returns `not_found` (unless it is SubmitError), other failures raise SubmitError."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, _request_timeout=30, **kwargs)
        except ApiException as exc:
            if exc.status == 404 and not_found is not SubmitError:
                return not_found
            if exc.status == 401:
                raise SubmitError(f"the cluster {self.server} rejected your credentials (HTTP 401): your login has expired; {LOGIN_HINT}") from None
            if exc.status == 403:
                raise SubmitError(
                    f"you may not {what} (HTTP 403): ask a project admin for the edit role on the project, "
                    "or use an account with it"
                ) from None
            if exc.status == 404:
                raise SubmitError(f"could not {what}: not found (HTTP 404)") from None
            reason = _scrub(f"{exc.reason or ''}".strip(), self.token)
            raise SubmitError(f"could not {what}: the cluster answered HTTP {exc.status} {reason}") from None
        except HTTPError as exc:
            raise SubmitError(f"cannot reach the cluster at {self.server} ({type(exc).__name__}): check the network or {LOGIN_HINT}") from None

    def pipeline_server(self, namespace: str, dspa: str) -> tuple[str, str]:
        """(API base URL, DSPA name) from the DSPA's route ds-pipeline-<name>; clear errors when there is none."""
        route = self._route(namespace, f"ds-pipeline-{dspa}")
        if route is None:
            listed = self.call(
                f"list pipeline servers in namespace {namespace}",
                self.custom.list_namespaced_custom_object,
                DSPA_GROUP, DSPA_VERSION, namespace, DSPA_PLURAL,
                not_found=None,
            )
            if listed is None:
                raise SubmitError(
                    "this cluster has no DataSciencePipelinesApplication API (is OpenShift AI installed?); "
                    "for standalone Kubeflow Pipelines pass --host (see docs/kind.md)"
                )
            names = sorted(item["metadata"]["name"] for item in listed.get("items", []))
            if not names:
                raise SubmitError(f"no pipeline server in namespace {namespace}: " + CREATE_PIPELINE_SERVER.format(ns=namespace))
            if dspa not in names and len(names) > 1:
                raise SubmitError(f"no pipeline server named {dspa} in namespace {namespace}; choose one with --dspa: {', '.join(names)}")
            if dspa not in names:  # the only one, whatever its name
                dspa = names[0]
                route = self._route(namespace, f"ds-pipeline-{dspa}")
            if route is None:
                raise SubmitError(
                    f"pipeline server {dspa} in namespace {namespace} has no route ds-pipeline-{dspa} yet: "
                    f"wait until it is ready (`oc get dspa {dspa} -n {namespace}`) or pass --host"
                )
        return _route_url(route), dspa

    def _route(self, namespace: str, name: str) -> dict | None:
        return self.call(
            f"read route {name} in namespace {namespace}",
            self.custom.get_namespaced_custom_object,
            "route.openshift.io", "v1", namespace, "routes", name,
            not_found=None,
        )

    def optional_route_url(self, namespace: str, name: str) -> str | None:
        try:
            route = self._route(namespace, name)
        except SubmitError:
            return None
        return _route_url(route) if route else None

    def dashboard_url(self) -> str | None:
        """The OpenShift AI dashboard from its ConsoleLink, when the user may read it; None otherwise."""
        for name in DASHBOARD_CONSOLE_LINKS:
            try:
                link = self.call(
                    f"read ConsoleLink {name}",
                    self.custom.get_cluster_custom_object,
                    "console.openshift.io", "v1", "consolelinks", name,
                    not_found=None,
                )
            except SubmitError:
                return None
            href = (link or {}).get("spec", {}).get("href")
            if href:
                return href.rstrip("/")
        return None

    def inference_service_url(self, namespace: str, name: str) -> str:
        """The in-cluster OpenAI base URL (status.address.url + /v1) of a ready InferenceService."""
        isvc = self.call(
            f"read InferenceService {name} in namespace {namespace}",
            self.custom.get_namespaced_custom_object,
            ISVC_GROUP, ISVC_VERSION, namespace, ISVC_PLURAL, name,
            not_found=None,
        )
        if isvc is None:
            raise SubmitError(f"InferenceService {name} not found in namespace {namespace} (`oc get inferenceservice -n {namespace}` lists them)")
        status = isvc.get("status") or {}
        ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
        if not ready or ready.get("status") != "True":
            why = (ready or {}).get("message") or (ready or {}).get("reason") or "no Ready condition yet"
            raise SubmitError(
                f"InferenceService {name} in namespace {namespace} is not ready ({why}): "
                f"wait for it (`oc get inferenceservice {name} -n {namespace} -w`) or check its predictor pods"
            )
        url = (status.get("address") or {}).get("url") or status.get("url")
        if not url:
            raise SubmitError(f"InferenceService {name} in namespace {namespace} reports no URL in its status")
        return url.rstrip("/") + "/v1"

    def point_secret_at(self, namespace: str, secret_name: str, api_base: str, model: str) -> str:
        """Write LLM_API_BASE and LLM_MODEL into the endpoint Secret (created if missing); returns what was done."""
        patch = {"stringData": {"LLM_API_BASE": api_base, "LLM_MODEL": model}}
        done = self.call(
            f"update Secret {secret_name} in namespace {namespace}",
            self.core.patch_namespaced_secret,
            secret_name, namespace, patch,
            not_found=None,
        )
        if done is not None:
            return "updated"
        from kubernetes import client

        body = client.V1Secret(
            metadata=client.V1ObjectMeta(name=secret_name, labels={"app.kubernetes.io/part-of": "socratic-sdg"}),
            type="Opaque",
            # vLLM without --api-key accepts any key; an endpoint with token auth needs LLM_API_KEY set here.
            string_data={**patch["stringData"], "LLM_API_KEY": os.environ.get("LLM_API_KEY") or "EMPTY"},
        )
        self.call(f"create Secret {secret_name} in namespace {namespace}", self.core.create_namespaced_secret, namespace, body)
        return "created"


def _route_url(route: dict) -> str:
    spec = route.get("spec") or {}
    host = spec.get("host") or next((i.get("host") for i in (route.get("status") or {}).get("ingress", []) if i.get("host")), None)
    if not host:
        raise SubmitError(f"route {route.get('metadata', {}).get('name')} has no host yet: wait until the pipeline server is ready")
    scheme = "https" if spec.get("tls") else "http"
    return f"{scheme}://{host}".rstrip("/")


# ---------------------------------------------------------------- the KFP v2beta1 REST API


class _Kfp:
    def __init__(self, host: str, token: str | None, options: SubmitOptions):
        import requests

        self.host = host.rstrip("/")
        self.token = token
        self.timeout = options.timeout
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.verify = False if options.insecure_skip_tls_verify else (options.ca_bundle or True)
        if options.insecure_skip_tls_verify:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def request(self, method: str, path: str, **kwargs) -> dict:
        import requests

        url = self.host + path
        try:
            response = self.session.request(method, url, timeout=self.timeout, allow_redirects=False, **kwargs)
        except requests.exceptions.SSLError:
            raise SubmitError(
                f"TLS verification failed for {self.host}: pass --ca-bundle with the cluster's ingress CA "
                "(or --insecure-skip-tls-verify on a test cluster)"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise SubmitError(f"cannot reach the pipeline server at {self.host} ({type(exc).__name__}): check the URL, the route or the port-forward") from None
        status = response.status_code
        login_page = 300 <= status < 400 or "html" in response.headers.get("Content-Type", "")
        if status == 401 or (login_page and status < 400):
            raise SubmitError(
                f"the pipeline server at {self.host} did not accept the token (HTTP {status}{', a login page' if login_page else ''}): "
                f"{LOGIN_HINT} again, or pass a fresh --token (or KFP_TOKEN)"
            )
        if status == 403:
            raise SubmitError(
                f"the pipeline server at {self.host} denied access (HTTP 403): your account needs access to the project "
                "(e.g. the edit role, which lets it get the pipeline server's route)"
            )
        if status >= 400:
            raise SubmitError(f"the pipeline server answered {method} {path.split('?')[0]} with HTTP {status}: {self._message(response)}")
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            raise SubmitError(f"the pipeline server at {self.host} answered {path.split('?')[0]} with something that is not JSON: is --host the KFP "
                              "API?") from None

    def _message(self, response) -> str:
        try:
            body = response.json()
            text = body.get("error_message") or body.get("message") or body.get("error") or json.dumps(body)
        except ValueError:
            text = response.text
        return _scrub(" ".join(str(text).split())[:300], self.token)

    @staticmethod
    def _filter(key: str, value: str) -> str:
        # As kfp.Client builds it: operation 1 is EQUALS.
        return json.dumps({"predicates": [{"operation": 1, "key": key, "stringValue": value}]})

    def healthz(self) -> dict:
        return self.request("GET", f"{API}/healthz")

    def find_pipeline(self, name: str) -> dict | None:
        found = self.request("GET", f"{API}/pipelines", params={"filter": self._filter("display_name", name), "page_size": 10})
        pipelines = [p for p in found.get("pipelines") or [] if p.get("display_name", p.get("name")) == name]
        return pipelines[0] if pipelines else None

    def upload_pipeline(self, package: PipelinePackage, name: str) -> dict:
        return self.request(
            "POST",
            f"{API}/pipelines/upload",
            params={"name": name, "display_name": name, "description": package.upload_description},
            files={"uploadfile": (package.path.name, package.content, "application/x-yaml")},
        )

    def versions(self, pipeline_id: str) -> list[dict]:
        versions, token = [], ""
        for _ in range(20):  # 20 pages of 100 versions
            params = {"page_size": 100, "sort_by": "created_at desc"}
            if token:
                params["page_token"] = token
            page = self.request("GET", f"{API}/pipelines/{pipeline_id}/versions", params=params)
            versions += page.get("pipeline_versions") or []
            token = page.get("next_page_token") or ""
            if not token:
                break
        return versions

    def upload_version(self, package: PipelinePackage, pipeline_id: str, name: str) -> dict:
        return self.request(
            "POST",
            f"{API}/pipelines/upload_version",
            params={"pipelineid": pipeline_id, "name": name, "display_name": name, "description": package.upload_description},
            files={"uploadfile": (package.path.name, package.content, "application/x-yaml")},
        )

    def experiment_id(self, name: str, create: bool) -> str | None:
        found = self.request("GET", f"{API}/experiments", params={"filter": self._filter("display_name", name), "page_size": 10})
        for experiment in found.get("experiments") or []:
            if experiment.get("display_name") == name:
                return experiment["experiment_id"]
        if not create:
            return None
        return self.request("POST", f"{API}/experiments", json={"display_name": name, "description": "Socratic SDG runs"})["experiment_id"]

    def create_run(self, body: dict) -> dict:
        return self.request("POST", f"{API}/runs", json=body)


# ---------------------------------------------------------------- submit


def _compile_to_temp() -> Path:
    from socratic_sdg.pipelines.socratic_sdg_pipeline import COMPILED_PATH, compile_pipeline

    return compile_pipeline(Path(tempfile.mkdtemp(prefix="socratic-sdg-")) / COMPILED_PATH.name)


def submit(options: SubmitOptions, progress: Callable[[str], None] = print) -> SubmitResult:
    """Upload the pipeline (or a new version) and start a run; see the module docstring."""
    # 1. The package and the parameters: checked before anything talks to a cluster.
    package = load_package(_compile_to_temp() if options.compile else (options.pipeline_file or PIPELINE_FILE))
    # Each source resolved on its own, so a flag wins over the file whichever name either uses.
    from_file = check_parameters(package, load_params_file(options.params_file)) if options.params_file else {}
    parameters = from_file | check_parameters(package, options.params or {})
    pipeline_name = options.pipeline_name or package.name
    version_name = options.version_name or f"{pipeline_name}-{package.digest}"

    # 2. The pipeline server and the token.
    cluster = None
    namespace = options.namespace
    if not options.host or options.isvc:
        cluster = _Cluster(options)
        namespace = namespace or cluster.namespace
        if not namespace:
            raise SubmitError("no namespace: pass --namespace or select the project with `oc project NAME`")
    dspa = options.dspa
    if options.host:
        host = options.host.rstrip("/")
        progress(f"pipeline server: {host}")
    else:
        host, dspa = cluster.pipeline_server(namespace, options.dspa)
        progress(f"pipeline server: {host} (route ds-pipeline-{dspa} in namespace {namespace})")
    # The kubeconfig's token goes only to the route found with it, never to a --host given by hand.
    token = options.token or os.environ.get("KFP_TOKEN") or (cluster.token if cluster and not options.host else None)
    if not token and not options.host:
        raise SubmitError(
            f"your kubeconfig login has no bearer token (certificate or exec login?): {LOGIN_HINT}, "
            "or pass --token (or set KFP_TOKEN)"
        )

    # 3. The model endpoint, if asked.
    endpoint = None
    if options.isvc:
        endpoint = cluster.inference_service_url(namespace, options.isvc)
        secret_parameter = pipeline_names(package.parameters).get("llm_secret_name", "llm_secret_name")
        secret_name = parameters.get(secret_parameter) or package.parameters.get(secret_parameter, {}).get("defaultValue") or "llm-endpoint"
        progress(f"model endpoint: {endpoint} (InferenceService {options.isvc}, model {options.isvc})")

    kfp = _Kfp(host, token, options)
    kfp.healthz()  # fails early on a wrong host or a refused token
    if options.dry_run:
        progress(f"dry run: would upload {package.path} as {pipeline_name} version {version_name} and start a run with "
                 f"{json.dumps(parameters, sort_keys=True)}")
        if endpoint:
            progress(f"dry run: would write LLM_API_BASE and LLM_MODEL into Secret {secret_name}")
        return SubmitResult(None, None, None, None, host, parameters, pipeline_name=pipeline_name, version_name=version_name)

    if endpoint:
        action = cluster.point_secret_at(namespace, secret_name, endpoint, options.isvc)
        progress(f"Secret {secret_name}: {action} LLM_API_BASE and LLM_MODEL (LLM_API_KEY untouched)")

    # 4. Pipeline and version.
    pipeline = kfp.find_pipeline(pipeline_name)
    if pipeline is None:
        pipeline = kfp.upload_pipeline(package, pipeline_name)
        pipeline_id = pipeline["pipeline_id"]
        versions = kfp.versions(pipeline_id)
        if not versions:
            raise SubmitError(f"the pipeline server created pipeline {pipeline_name} without a version: upload it again")
        version = versions[0]
        progress(f"pipeline {pipeline_name}: uploaded (id {pipeline_id})")
    else:
        pipeline_id = pipeline["pipeline_id"]
        versions = kfp.versions(pipeline_id)
        if options.version_name:
            if any(version_name in (v.get("name"), v.get("display_name")) for v in versions):
                raise SubmitError(f"pipeline {pipeline_name} already has a version named {version_name}: choose another --version-name")
            version = None
        else:
            marker = f"content {package.digest}]"
            version = next((v for v in versions if version_name in (v.get("name"), v.get("display_name")) or marker in (v.get("description") or "")), None)
        if version is None:
            version = kfp.upload_version(package, pipeline_id, version_name)
            progress(f"pipeline {pipeline_name}: new version {version_name} (id {version['pipeline_version_id']})")
        else:
            progress(f"pipeline {pipeline_name}: version {version.get('display_name') or version.get('name')} has the same content, reusing it")
    version_id = version["pipeline_version_id"]
    version_name = version.get("display_name") or version.get("name") or version_name

    # 5. Experiment and run.
    experiment_id = kfp.experiment_id(options.experiment, create=True)
    run_name = options.run_name or f"{pipeline_name} {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC"
    run = kfp.create_run(
        {
            "display_name": run_name,
            "description": f"socratic-sdg submit: {pipeline_name} version {version_name}",
            "experiment_id": experiment_id,
            "pipeline_version_reference": {"pipeline_id": pipeline_id, "pipeline_version_id": version_id},
            "runtime_config": {"parameters": parameters},
        }
    )
    run_id = run["run_id"]
    progress(f"run started: {run_name} (id {run_id}) in experiment {options.experiment}")
    run_url = _run_url(options, cluster, namespace, dspa, host, experiment_id, run_id)
    return SubmitResult(
        run_id=run_id,
        run_url=run_url,
        pipeline_id=pipeline_id,
        version_id=version_id,
        host=host,
        parameters=parameters,
        experiment_id=experiment_id,
        pipeline_name=pipeline_name,
        version_name=version_name,
    )


def _run_url(options, cluster, namespace, dspa, host, experiment_id, run_id) -> str:
    """Where a person looks at the run: the KFP UI, the OpenShift AI dashboard, or at least the API."""
    if options.dashboard_url and namespace:
        return f"{options.dashboard_url.rstrip('/')}/experiments/{namespace}/{experiment_id}/runs/{run_id}"
    if options.host:  # standalone KFP: the UI service proxies the API, so the host is the UI too
        return f"{host}/#/runs/details/{run_id}"
    ui = cluster.optional_route_url(namespace, f"ds-pipeline-ui-{dspa}")  # DSPA with the KFP UI deployed
    if ui:
        return f"{ui}/#/runs/details/{run_id}"
    dashboard = cluster.dashboard_url()
    if dashboard:
        return f"{dashboard}/experiments/{namespace}/{experiment_id}/runs/{run_id}"
    return f"{host}{API}/runs/{run_id}"
