"""The OpenAI-compatible model endpoint: configuration from the environment and a pre-flight check.

Credentials come from environment variables (on a cluster, from a Kubernetes Secret): they are
never pipeline parameters and never logged.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from urllib.parse import quote
from .errors import SocraticSdgError


class EndpointError(SocraticSdgError, RuntimeError):
    """The model endpoint is misconfigured or unreachable; the message says which and how to fix it."""


# --- secrets out of error texts ---------------------------------------------------------------

_SECRETS: set[str] = set()  # API keys this process was configured with (from the environment)
_MIN_SECRET = 4  # shorter values are no secret worth hiding, and replacing them would garble any text
REDACTED = "***"
# What looks like a credential whoever configured it: an Authorization (or API key) header or field
# and its value, a bearer token, an OpenAI-style sk-... key, a Hugging Face token, a password in a URL.
_CREDENTIAL_PATTERNS = (
    (
        re.compile(
            r"(?i)\b([\w-]*?(?:authorization|api[-_]?key|access[-_]?token|auth[-_]?token))"
            r"([\"']?\s*[:=]\s*[\"']?)((?:bearer|basic|digest|token)\s+)?[^\s\"',;}\])]+"
        ),
        r"\1\2\3" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{4,}"), r"\1 " + REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{6,}"), "sk-" + REDACTED),
    (re.compile(r"\bhf_[A-Za-z0-9]{10,}"), "hf_" + REDACTED),
    (re.compile(r"(?i)\b(https?://)[^/\s:@]+:[^/\s@]+@"), r"\1" + REDACTED + "@"),
)


def register_secret(value: str | None) -> None:
    """Remember a credential so that :func:`redact` removes it from every error text of this process."""
    value = (value or "").strip()
    if len(value) >= _MIN_SECRET and value != "EMPTY":
        _SECRETS.add(value)


def redact(text: object) -> str:
    """``text`` with the configured API keys (and LLM_API_KEY) and anything that looks like a credential
    replaced by ``***``: for error texts from an endpoint or proxy, which may echo the request's headers,
    before they are stored (failed.jsonl, checkpoints) or printed. Redact before truncating."""
    text = str(text)
    secrets = set(_SECRETS)
    env_key = os.environ.get("LLM_API_KEY", "").strip()
    if len(env_key) >= _MIN_SECRET and env_key != "EMPTY":
        secrets.add(env_key)
    for secret in sorted(secrets, key=len, reverse=True):  # a key that contains another goes first
        for form in {secret, json.dumps(secret)[1:-1], quote(secret, safe="")}:
            if form in text:
                text = text.replace(form, REDACTED)
    for pattern, replacement in _CREDENTIAL_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@dataclass(frozen=True)
class EndpointConfig:
    api_base: str
    model: str
    api_key: str = "EMPTY"  # local servers ignore it; the OpenAI client insists on a value

    def __post_init__(self) -> None:
        register_secret(self.api_key)  # never in an error text, whoever echoes it

    def __repr__(self) -> str:  # keep the key out of logs and tracebacks
        return f"EndpointConfig(api_base={self.api_base!r}, model={self.model!r}, api_key=***)"

    @property
    def litellm_model(self) -> str:
        """sdg_hub calls the endpoint through litellm, which needs a provider prefix."""
        return f"openai/{self.model}"

    @classmethod
    def from_env(cls, api_base: str | None = None, model: str | None = None, api_key: str | None = None) -> "EndpointConfig":
        """Explicit values win over LLM_API_BASE, LLM_MODEL and LLM_API_KEY."""
        api_base = (api_base or os.environ.get("LLM_API_BASE", "")).strip().rstrip("/")
        model = (model or os.environ.get("LLM_MODEL", "")).strip()
        api_key = (api_key or os.environ.get("LLM_API_KEY", "")).strip() or "EMPTY"
        if not api_base:
            raise EndpointError(
                "no model endpoint configured: set LLM_API_BASE to the OpenAI-compatible base URL "
                "(e.g. http://vllm.my-project.svc:8000/v1), on a cluster through the Secret named by llm_secret_name"
            )
        if not api_base.startswith(("http://", "https://")):
            raise EndpointError(f"LLM_API_BASE={api_base!r} is not an http(s) URL; it should look like http://host:8000/v1")
        if not model:
            raise EndpointError("no model name configured: set LLM_MODEL (or --model) to a model the endpoint serves")
        return cls(api_base=api_base, model=model, api_key=api_key)


def _fetch_models(config: EndpointConfig, timeout: float = 15.0) -> list[dict]:
    """The endpoint's /models entries, as dicts (vLLM adds ``max_model_len``); clear errors otherwise."""
    import openai

    client = openai.OpenAI(base_url=config.api_base, api_key=config.api_key, timeout=timeout, max_retries=1)
    try:
        return [m.model_dump() for m in client.models.list()]
    except openai.AuthenticationError as exc:
        raise EndpointError(
            f"the endpoint {config.api_base} refused the API key (HTTP {exc.status_code}); check LLM_API_KEY in the Secret"
        ) from None
    except openai.PermissionDeniedError as exc:
        raise EndpointError(
            f"the endpoint {config.api_base} denied access with this API key (HTTP {exc.status_code}); check LLM_API_KEY in the Secret"
        ) from None
    except openai.NotFoundError:
        raise EndpointError(
            f"{config.api_base}/models does not exist (HTTP 404); LLM_API_BASE should be the OpenAI base URL, usually ending in /v1"
        ) from None
    except openai.APITimeoutError:
        raise EndpointError(
            f"the model endpoint at {config.api_base} did not answer within {timeout:.0f}s; check LLM_API_BASE and that the model server is up"
        ) from None
    except openai.APIConnectionError:
        raise EndpointError(
            f"cannot reach the model endpoint at {config.api_base}; check LLM_API_BASE and that the model server is running"
        ) from None
    except openai.APIStatusError as exc:
        raise EndpointError(f"the model endpoint {config.api_base} answered HTTP {exc.status_code} to /models; is it an OpenAI-compatible server?") from None
    except (ValueError, TypeError):  # a body that is not the OpenAI list shape
        raise EndpointError(f"the model endpoint {config.api_base} answered /models with something that is not a model list; is it an OpenAI-compatible "
                            "server?") from None


def list_models(config: EndpointConfig, timeout: float = 15.0) -> list[str]:
    return [m["id"] for m in _fetch_models(config, timeout)]


def _find(config: EndpointConfig, models: list[dict]) -> dict:
    for model in models:
        if model.get("id") == config.model:
            return model
    raise EndpointError(
        f"the endpoint {config.api_base} does not serve a model named {config.model!r} "
        f"(it serves: {', '.join(m.get('id', '?') for m in models) or 'none'}); set LLM_MODEL to one of those"
    )


def check_model(config: EndpointConfig) -> dict:
    """Fail fast, before any generation: the endpoint answers and serves the configured model.

    Returns the model's /models entry (vLLM's has ``max_model_len``, the context the model serves).
    """
    return _find(config, _fetch_models(config))


def check(config: EndpointConfig) -> list[str]:
    """Fail fast, before any generation: the endpoint answers and serves the configured model."""
    models = _fetch_models(config)
    _find(config, models)
    return [m["id"] for m in models]
