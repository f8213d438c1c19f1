"""The OpenAI-compatible model endpoint: configuration from the environment and a pre-flight check.

Credentials come from environment variables (on a cluster, from a Kubernetes Secret): they are
never pipeline parameters and never logged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


class EndpointError(RuntimeError):
    """The model endpoint is misconfigured or unreachable; the message says which and how to fix it."""


@dataclass(frozen=True)
class EndpointConfig:
    api_base: str
    model: str
    api_key: str = "EMPTY"  # local servers ignore it; the OpenAI client insists on a value

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
        raise EndpointError(f"the model endpoint {config.api_base} answered /models with something that is not a model list; is it an OpenAI-compatible server?") from None


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
