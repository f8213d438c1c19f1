"""How the generation engine sends chat completions: straight HTTP to the OpenAI-compatible endpoint,
or through litellm as sdg_hub does.

The direct transport (aiohttp, one keep-alive connection pool per run) costs ~0.4 ms of CPU per
request on this machine; litellm (which goes through the openai SDK's request transforms) ~4 ms.
With one Python thread driving hundreds of requests per second, that difference decides whether the
client or the endpoint is the bottleneck. Both send the same request: the completion arguments
sdg_hub's LLM block builds, minus litellm's own settings; both report failures the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from dataclasses import dataclass
from typing import Any

from ..endpoint import redact, register_secret

log = logging.getLogger(__name__)

# Arguments of an OpenAI chat completion request (and vLLM's sampling extensions) that are forwarded
# as they are; anything else from a flow's block config is litellm's business and is dropped, as
# litellm does with drop_params=True.
OPENAI_CHAT_PARAMS = frozenset(
    {
        "temperature", "top_p", "n", "stop", "max_tokens", "max_completion_tokens", "presence_penalty",
        "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "seed", "response_format", "tools",
        "tool_choice", "parallel_tool_calls", "user", "reasoning_effort", "modalities", "prediction",
        "service_tier", "metadata", "store",
        # vLLM's OpenAI server accepts these at the top level too
        "top_k", "min_p", "repetition_penalty", "length_penalty", "min_tokens", "stop_token_ids",
        "skip_special_tokens", "spaces_between_special_tokens", "include_stop_str_in_output", "ignore_eos",
        "guided_json", "guided_regex", "guided_choice", "guided_grammar", "guided_decoding_backend",
        "structured_outputs", "chat_template_kwargs", "add_generation_prompt", "continue_final_message",
        "priority", "truncate_prompt_tokens",
    }
)
# litellm / sdg_hub settings that are not request arguments.
_NOT_SENT = frozenset(
    {"model", "messages", "api_key", "api_base", "base_url", "timeout", "num_retries", "max_retries", "drop_params",
     "custom_llm_provider", "api_version", "extra_headers", "extra_body", "stream", "async_mode", "mock_response"}
)


@dataclass
class ParsedResponse:
    messages: list[dict]  # one dict per choice: {"content", "role", ...} as sdg_hub's LLMChatBlock stores it
    truncated: bool  # a choice stopped at max_tokens (finish_reason "length")
    prompt_tokens: int = 0
    completion_tokens: int = 0


class TransportFailure(Exception):
    """A failed request, already classified (kind as in the gateway, HTTP status, Retry-After)."""

    def __init__(self, kind: str, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.kind, self.reason, self.status, self.retry_after = kind, reason, status, retry_after


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        import email.utils
        import time

        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _error_message(body: bytes) -> str:
    """The message of an error body, one line, credentials redacted (a proxy may echo the request's
    Authorization header) before it is cut to 300 characters."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message", text) if isinstance(error, dict) else str(error)
    except (json.JSONDecodeError, AttributeError):
        message = text
    return " ".join(redact(message).split())[:300] or "(empty body)"


def token_count(value: Any) -> int:
    """A usage token count as the endpoint reported it, or 0 when it is not a whole number (a reply
    with an odd usage block is still a good reply)."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return max(0, int(number)) if number == number and number not in (float("inf"), float("-inf")) and number.is_integer() else 0


def kind_for_status(status: int, message: str) -> str:
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth"
    if status == 404:
        return "not_found"
    if status in (400, 413, 422):
        lowered = message.lower()
        if ("context" in lowered and ("length" in lowered or "window" in lowered)) or "too long" in lowered or ("maximum" in lowered and "token" in lowered):
            return "context_length"
        return "bad_request"
    if status in (408, 409) or status >= 500:
        return "server_error"
    return "client_error"


def parse_completion(data: Any) -> ParsedResponse:
    """An OpenAI chat completion body -> ParsedResponse; raises TransportFailure(bad_response) otherwise."""
    if not isinstance(data, dict):
        raise TransportFailure("bad_response", "the endpoint answered with JSON that is not a chat completion")
    choices = data.get("choices") or []
    if not choices:
        raise TransportFailure("bad_response", "the endpoint answered without any completion choice")
    messages, truncated = [], False
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict) or (message.get("content") is None and not message.get("tool_calls")):
            raise TransportFailure("bad_response", "the endpoint answered with an empty message")
        messages.append({"content": message.get("content"), **message})
        truncated = truncated or choice.get("finish_reason") == "length"
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return ParsedResponse(
        messages=messages,
        truncated=truncated,
        prompt_tokens=token_count(usage.get("prompt_tokens")),
        completion_tokens=token_count(usage.get("completion_tokens")),
    )


def _ssl_context() -> ssl.SSLContext:
    """Trust what the openai/httpx client (used by the endpoint check) trusts: certifi, plus SSL_CERT_FILE/DIR."""
    try:
        import certifi

        context = ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        context = ssl.create_default_context()
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile or capath:
        context.load_verify_locations(cafile=cafile or None, capath=capath or None)
    return context


class DirectTransport:
    """POST {api_base}/chat/completions over one aiohttp session (create and close inside the run's event loop)."""

    name = "direct"

    def __init__(self, api_base: str, api_key: str, model: str, max_connections: int = 0):
        self.url = api_base.rstrip("/") + "/chat/completions"
        register_secret(api_key)
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self.model = model
        self.max_connections = max_connections
        self._session = None
        self._dropped: set[str] = set()

    async def start(self) -> None:
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self.max_connections, ssl=_ssl_context() if self.url.startswith("https") else False)
        self._session = aiohttp.ClientSession(connector=connector, trust_env=True)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def payload(self, messages: list[dict], kwargs: dict) -> tuple[dict, dict]:
        model = kwargs.get("model") or self.model  # a block may name another model served by the same endpoint
        if isinstance(model, str) and model.split("/", 1)[0] in ("openai", "hosted_vllm") and "/" in model:
            model = model.split("/", 1)[1]  # litellm's provider prefix is not part of the served name
        body: dict[str, Any] = {"model": model, "messages": messages}
        for key, value in kwargs.items():
            if key in OPENAI_CHAT_PARAMS:
                if value is not None:
                    body[key] = value
            elif key not in _NOT_SENT and key not in self._dropped:
                self._dropped.add(key)
                log.warning("not sending %r to the endpoint: not an OpenAI chat completion argument (put it in extra_body)", key)
        if body.get("max_completion_tokens") is not None:
            body.pop("max_tokens", None)
        extra = kwargs.get("extra_body")
        if isinstance(extra, dict):
            body.update(extra)
        headers = self.headers
        if isinstance(kwargs.get("extra_headers"), dict):
            headers = {**headers, **kwargs["extra_headers"]}
        return body, headers

    async def complete(self, messages: list[dict], kwargs: dict, timeout: float) -> ParsedResponse:
        import aiohttp

        assert self._session is not None, "transport not started"
        body, headers = self.payload(messages, kwargs)
        try:
            async with self._session.post(self.url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                raw = await response.read()
                status = response.status
                retry_after = _retry_after(response.headers.get("Retry-After"))
        except asyncio.TimeoutError:
            raise TransportFailure("timeout", f"no answer within {timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise TransportFailure("connection", f"connection error: {' '.join(redact(exc).split())[:200] or exc.__class__.__name__}") from None
        if status != 200:
            message = _error_message(raw)
            raise TransportFailure(kind_for_status(status, message), f"HTTP {status}: {message}", status, retry_after)
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise TransportFailure("bad_response", f"the endpoint answered HTTP 200 with a body that is not JSON ({len(raw)} bytes)") from None
        return parse_completion(data)


class LitellmTransport:
    """Through litellm.acompletion, as sdg_hub's LLMChatBlock does (its own retries off)."""

    name = "litellm"

    def __init__(self, completion_fn=None):
        import litellm

        litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner on every failed request
        self._completion = completion_fn or litellm.acompletion

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        await close_litellm_clients()

    async def complete(self, messages: list[dict], kwargs: dict, timeout: float) -> ParsedResponse:
        call_kwargs = dict(kwargs)
        call_kwargs.update(num_retries=0, max_retries=0, timeout=timeout)
        response = await self._completion(messages=messages, **call_kwargs)
        choices = getattr(response, "choices", None) or []
        if not choices:
            raise TransportFailure("bad_response", "the endpoint answered without any completion choice")
        messages_out, truncated = [], False
        for choice in choices:
            message = getattr(choice, "message", None)
            content = getattr(message, "content", None)
            if message is None or (content is None and not getattr(message, "tool_calls", None)):
                raise TransportFailure("bad_response", "the endpoint answered with an empty message")
            messages_out.append({"content": content, **getattr(message, "__dict__", {})})
            truncated = truncated or getattr(choice, "finish_reason", None) == "length"
        usage = getattr(response, "usage", None)
        return ParsedResponse(
            messages=messages_out,
            truncated=truncated,
            prompt_tokens=token_count(getattr(usage, "prompt_tokens", 0)),
            completion_tokens=token_count(getattr(usage, "completion_tokens", 0)),
        )


async def close_litellm_clients() -> None:
    """Close the HTTP clients litellm cached in this event loop and forget them (the next run has its own loop)."""
    try:
        import litellm
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

        await GLOBAL_LOGGING_WORKER.stop()
        cache = litellm.in_memory_llm_clients_cache
        for client in list(getattr(cache, "cache_dict", {}).values()):
            close = getattr(client, "close", None)
            if close is not None and asyncio.iscoroutinefunction(close):
                try:
                    await close()
                except Exception:  # closing is best effort
                    pass
        cache.flush_cache()
    except Exception as exc:  # never fail a finished run over cleanup
        log.debug("litellm cleanup: %s", exc)
