"""A small OpenAI-compatible HTTP server for deterministic tests, fault injection and benchmarks.

Replies depend on the prompt's role (student / reference answer / tutor), so a flow run through it
yields predictable conversations. ``fail_when`` maps a substring of the prompt to an HTTP status the
server always answers with instead, to fail chosen rows. ``faults`` holds richer rules (transient
errors, 429 with Retry-After, hangs past the client timeout, empty or malformed bodies).

It runs on aiohttp in a background thread (or its own process, below), so that it costs little per
request and a simulated capacity is really available. It can also simulate an endpoint's capacity: ``latency`` per request (a number or a ``(low, high)``
range drawn with a seeded RNG) and ``max_concurrent``, a server-side cap on requests processed at
once (extra requests queue, as in vLLM's scheduler). Capacity is then ``max_concurrent / mean
latency`` requests per second.

Every 200 answer carries ``usage`` (prompt tokens = words in the prompt, completion tokens = words in
the reply); the server sums what it reported in ``prompt_tokens`` / ``completion_tokens`` so tests can
compare with the client's accounting.

Run it in its own process (benchmarks, so it does not compete with the client for the GIL):
``python -m socratic_sdg.testing.fake_openai --latency 0.1:0.3 --max-concurrent 16`` prints the base URL, then
serves; ``GET /stats`` returns the counters as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import random
import threading
import time
from dataclasses import dataclass

STUDENT = "I don't get how to find the gradient here. Can you just tell me?"  # the start of every first student message
REFERENCE = "The gradient is (2x, 2y), so at (1, 2) it is (2, 4)."
TUTOR = "Good question. What do you notice about how the function changes when only x varies?"
# sdg_hub's knowledge flows (e.g. doc_direct_qa): a question list, answers, a faithfulness verdict.
QUESTIONS = ["What does the gradient of a function measure?", "How is the gradient of x^2 + y^2 computed?"]
# Multi-turn flows: the student's later turns (a wrong attempt, then frustration) and the tutor's later replies.
STUDENT_ATTEMPT = "Is it just 2x + 2y = 6? That's my answer."
STUDENT_FRUSTRATED = "I've tried twice and I'm stuck. Please just tell me the answer."
TUTOR_FOLLOWUP = "You're close. What happens to y when you only change x?"
# With ``leak_rate``: a tutor reply that gives the answer away (the filter rejects it).
TUTOR_LEAK = "The answer is (2, 4): the gradient is (2x, 2y), so at (1, 2) it is (2, 4)."


def student_message(prompt: str) -> str:
    """The student's first message: STUDENT plus an exercise number drawn from the prompt, so that the
    conversations of different chunks (or personas) differ, as real ones do, and survive dedup."""
    number = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16) % 900 + 100
    return f"{STUDENT} It's exercise {number}."


@dataclass
class Fault:
    """One fault rule: requests whose prompt contains ``match`` get ``kind`` instead of an answer.

    kind: ``status`` (HTTP ``status``), ``429`` (with ``Retry-After: retry_after``), ``hang`` (no answer
    for ``hang_seconds``, then the connection closes), ``empty`` (200 with an empty body),
    ``malformed`` (200 with a body that is not JSON), ``no_content`` (200, a JSON completion whose
    message has no content), ``reset`` (close the connection without answering), ``echo_headers``
    (HTTP ``status`` whose error body echoes the request's headers, Authorization included, as some
    proxies and debug servers do), ``bad_usage`` (a good reply whose ``usage`` counts are not integers).
    ``times``: how often each distinct prompt gets the fault before it is answered normally
    (None = always).
    """

    match: str = ""
    kind: str = "status"
    status: int = 500
    times: int | None = None
    retry_after: float | None = None
    hang_seconds: float = 5.0


def _words(text: str) -> int:
    return len(text.split())


class FakeOpenAI:
    """The server runs on an asyncio loop (aiohttp) in a background thread: it stays cheap under load."""

    def __init__(
        self,
        models=("fake-model",),
        api_key: str | None = None,
        latency: float | tuple[float, float] = 0.0,
        max_concurrent: int | None = None,
        seed: int = 0,
        port: int = 0,
        leak_rate: float = 0.0,
        answers_n: bool = True,
        refuses_n: bool = False,
    ):
        self.models = list(models)
        # Tutor replies that leak the answer, as a share drawn per (prompt, seed, choice): best-of-k benchmarks.
        self.leak_rate = leak_rate
        self.answers_n = answers_n  # False: one choice whatever `n` asks, as some servers and proxies do
        self.refuses_n = refuses_n  # True: HTTP 400 for `n` > 1, as gateways that do not pass it on do
        self.api_key = api_key
        self.fail_when: dict[str, int] = {}
        self.faults: list[Fault] = []
        self.unfaithful: str | None = None  # knowledge flows: answers containing this are judged NO (filtered)
        self.max_model_len = 8192  # reported by /v1/models, as vLLM does
        self.latency = latency
        self.max_concurrent = max_concurrent
        self.requests = 0  # chat completion requests received (every attempt counts)
        self.completed = 0  # answered 200 with a completion and usage
        self.faulted: dict[str, int] = {}  # fault kind -> times injected
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.in_flight = 0  # being processed (holding a server slot)
        self.max_in_flight = 0
        self.busy_seconds = 0.0  # sum of processing time over all requests (slot-seconds)
        self.prompts: list[str] = []  # every chat request's messages as JSON, in arrival order
        self.calls: list[tuple[float, dict]] = []  # (time.monotonic() at arrival, request body) per chat request
        self._hits: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner = None
        self._slots: asyncio.Semaphore | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="fake-openai")

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def capacity(self) -> float | None:
        """Requests per second the simulated endpoint can serve at most (None without a cap)."""
        if not self.max_concurrent:
            return None
        low, high = self.latency if isinstance(self.latency, tuple) else (self.latency, self.latency)
        return self.max_concurrent / ((low + high) / 2) if high > 0 else None

    def stats(self) -> dict:
        with self._lock:
            return {
                "requests": self.requests,
                "completed": self.completed,
                "faulted": dict(self.faulted),
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "max_in_flight": self.max_in_flight,
                "busy_seconds": self.busy_seconds,
            }

    def reset_stats(self) -> None:
        with self._lock:
            self.requests = self.completed = self.prompt_tokens = self.completion_tokens = self.max_in_flight = 0
            self.busy_seconds = 0.0
            self.faulted.clear()
            self._hits.clear()
            self.prompts.clear()
            self.calls.clear()

    def reply_for(self, messages: list[dict]) -> str:
        system = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
        user = " ".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
        if "Develop a series of educational questions" in user:
            return "\n".join(f"[QUESTION]\n{q}\n[END]" for q in QUESTIONS)
        if "Answer the question based on the provided document" in user:
            question = next((q for q in QUESTIONS if q in user), "the question")
            return f"From the passage: {question.lower()} It is the vector of partial derivatives."
        if "Determine if the provided information is corroborated" in user:
            verdict = "NO" if self.unfaithful and self.unfaithful.lower() in user.lower() else "YES"
            return f"[Start of Explanation]\nChecked against the context.\n[End of Explanation]\n[Start of Answer]\n{verdict}\n[End of Answer]"
        if "Socratic" in system:
            # a later tutor turn when the conversation so far already holds a tutor reply
            return TUTOR_FOLLOWUP if any(m.get("role") == "assistant" and m.get("content") == TUTOR for m in messages) else TUTOR
        if "mathematician" in system:
            return REFERENCE
        if "frustrated" in system.lower():
            return STUDENT_FRUSTRATED
        if "follow-up" in system.lower():
            return STUDENT_ATTEMPT
        return student_message(user)

    def replies_for(self, messages: list[dict], n: int = 1, seed=None) -> list[str]:
        """The ``n`` choices of one request (one unless ``answers_n``); with ``leak_rate`` a tutor reply
        leaks the answer when a hash of (prompt, seed, choice) falls under it."""
        content = self.reply_for(messages)
        choices = []
        for index in range(max(1, n) if self.answers_n else 1):
            draw = int(hashlib.sha256(f"{json.dumps(messages)}|{seed}|{index}".encode()).hexdigest()[:8], 16) / 16**8
            choices.append(TUTOR_LEAK if content in (TUTOR, TUTOR_FOLLOWUP) and draw < self.leak_rate else content)
        return choices

    def _latency(self) -> float:
        if isinstance(self.latency, tuple):
            with self._lock:
                return self._rng.uniform(*self.latency)
        return self.latency

    def _fault_for(self, prompt: str) -> Fault | None:
        for needle, status in self.fail_when.items():
            if needle in prompt:
                return Fault(match=needle, status=status)
        key = hashlib.sha256(prompt.encode()).hexdigest()
        for index, fault in enumerate(self.faults):
            if fault.match not in prompt:
                continue
            if fault.times is None:
                return fault
            with self._lock:
                seen = self._hits.get((index, key), 0)
                if seen < fault.times:
                    self._hits[(index, key)] = seen + 1
                    return fault
        return None

    # --- the aiohttp application ---

    def _authorised(self, request) -> bool:
        return not self.api_key or request.headers.get("Authorization") == f"Bearer {self.api_key}"

    async def _models(self, request):
        from aiohttp import web

        if not self._authorised(request):
            return web.json_response({"error": {"message": "invalid api key", "type": "auth"}}, status=401)
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model", "max_model_len": self.max_model_len} for m in self.models]})

    async def _stats(self, request):
        from aiohttp import web

        return web.json_response(self.stats())

    async def _not_found(self, request):
        from aiohttp import web

        if request.method == "POST":
            with self._lock:
                self.requests += 1
        return web.json_response({"error": {"message": "not found"}}, status=404)

    async def _chat(self, request):
        from aiohttp import web

        with self._lock:
            self.requests += 1
            number = self.requests
        raw = await request.read()
        if not self._authorised(request):
            return web.json_response({"error": {"message": "invalid api key", "type": "auth"}}, status=401)
        body = json.loads(raw or b"{}")
        messages = body.get("messages", [])
        prompt = json.dumps(messages)
        with self._lock:
            self.prompts.append(prompt)
            self.calls.append((time.monotonic(), body))
        fault = self._fault_for(prompt)
        if fault is None and self.refuses_n and int(body.get("n") or 1) > 1:
            fault = Fault(match="", status=400)
        if fault is not None:
            with self._lock:
                self.faulted[fault.kind] = self.faulted.get(fault.kind, 0) + 1
            return await self._inject(request, fault)
        if self._slots is not None:
            await self._slots.acquire()
        try:
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            started = time.monotonic()
            delay = self._latency()
            if delay:
                await asyncio.sleep(delay)
            contents = self.replies_for(messages, int(body.get("n") or 1), body.get("seed"))
            usage = {"prompt_tokens": sum(_words(str(m.get("content", ""))) for m in messages), "completion_tokens": sum(map(_words, contents))}
            usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
            payload = {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", ""),
                "choices": [{"index": index, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                            for index, content in enumerate(contents)],
                "usage": usage,
            }
            with self._lock:
                self.completed += 1
                self.prompt_tokens += usage["prompt_tokens"]
                self.completion_tokens += usage["completion_tokens"]
                self.busy_seconds += time.monotonic() - started
            return web.json_response(payload)
        finally:
            with self._lock:
                self.in_flight -= 1
            if self._slots is not None:
                self._slots.release()

    async def _inject(self, request, fault: Fault):
        from aiohttp import web

        if fault.kind == "429":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return web.json_response({"error": {"message": "rate limited (injected)", "type": "rate_limit"}}, status=429, headers=headers)
        if fault.kind == "hang":
            try:
                await asyncio.wait_for(self._stopping.wait(), fault.hang_seconds)
            except asyncio.TimeoutError:
                pass
            raise ConnectionResetError("hung up")  # aiohttp drops the connection without an answer
        if fault.kind == "empty":
            return web.Response(status=200, body=b"", content_type="application/json")
        if fault.kind == "malformed":
            return web.Response(status=200, body=b'{"id": "chatcmpl-x", "choices": [{"index": 0, "mess', content_type="application/json")
        if fault.kind == "no_content":
            return web.json_response({"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "m", "choices": []})
        if fault.kind == "echo_headers":
            headers = dict(request.headers)
            auth = request.headers.get("Authorization", "")
            message = f"Authorization: {auth} refused by upstream; request {headers}; raw: " + "\r\n".join(f"{k}: {v}" for k, v in headers.items())
            return web.json_response({"error": {"message": message, "request_headers": headers}}, status=fault.status)
        if fault.kind == "bad_usage":
            body = json.loads(await request.read() or b"{}")
            content = self.reply_for(body.get("messages", []))
            return web.json_response({
                "id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": "n/a", "completion_tokens": 7.0, "total_tokens": None},
            })
        if fault.kind == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("reset")
        return web.json_response({"error": {"message": f"injected failure {fault.status}"}}, status=fault.status)

    def _serve(self) -> None:
        from aiohttp import web

        async def main():
            self._slots = asyncio.Semaphore(self.max_concurrent) if self.max_concurrent else None
            self._stopping = asyncio.Event()
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_get("/v1/models", self._models)
            app.router.add_get("/v1/models/", self._models)
            app.router.add_get("/stats", self._stats)
            app.router.add_get("/v1/stats", self._stats)
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_route("*", "/{tail:.*}", self._not_found)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", self._port, backlog=1024)
            await site.start()
            self._port = site._server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stopping.wait()
            await self._runner.cleanup()

        logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # injected hang-ups are not errors
        self._loop = asyncio.new_event_loop()
        self._loop.set_exception_handler(lambda loop, context: None)  # a client that hung up is not news
        try:
            self._loop.run_until_complete(main())
        finally:
            self._loop.close()

    def start(self) -> "FakeOpenAI":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=10)

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _parse_latency(text: str) -> float | tuple[float, float]:
    if ":" in text:
        low, high = text.split(":", 1)
        return (float(low), float(high))
    return float(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the fake OpenAI-compatible endpoint until killed.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", default="0", help="seconds per request, or LOW:HIGH for a uniform range")
    parser.add_argument("--max-concurrent", type=int, default=0, help="server-side cap on requests processed at once")
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--leak-rate", type=float, default=0.0, help="share of tutor replies that give the answer away")
    parser.add_argument("--no-n", action="store_true", help="answer one choice whatever `n` asks (as some servers and proxies do)")
    args = parser.parse_args(argv)
    serve_until_killed(FakeOpenAI(models=[args.model], latency=_parse_latency(args.latency), max_concurrent=args.max_concurrent or None,
                                  seed=args.seed, port=args.port, leak_rate=args.leak_rate, answers_n=not args.no_n))


def serve_until_killed(server: FakeOpenAI) -> None:
    """Start ``server``, print its base URL (the parent process reads it), serve until interrupted."""
    server.start()
    print(server.api_base, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
