"""Cold starts: how long Stratus takes to load a model on demand, and what the first request
after an unload pays, beside llama.cpp's own ``llama-server`` starting on the same GGUF.

    .venv/bin/python bench/cold_start.py                      # both packaged models, 3 rounds
    .venv/bin/python bench/cold_start.py --models gemma-3-270m --rounds 5

One system at a time (never two llama.cpp engines computing at once), same GGUF, threads,
slots and context, each asked for one token of the same prompt (``max_tokens`` 1):

- llama-server (built once by ``_cpp_server.py``): from exec to ``/health`` 200 (start-up),
  and to the answer of the first request, per round, a fresh process each time;
- Stratus: one ``stratus serve`` with the model ``on_demand`` and ``idle_unload = 1``; each
  round waits until the model is unloaded, then sends the request (its latency at the client
  is the cold request; the job's ``metrics.cold_start_ms`` is the load alone) and the same
  request again (warm). What the cold start adds is cold minus warm.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _cpp_server import CACHE
from _cpp_server import command as cpp_command
from _systems import KEY, stop, wait_ready

from stratus import weights

MODELS = {  # slug: weights, engine options
    "gemma-3-270m": ("package:gemma-3-270m", ['chat_format = "gemma"']),
    "qwen2.5-coder-1.5b-instruct": ("package:qwen2.5-coder-1.5b-instruct", []),
}
PROMPT = "Write one word."


def _port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def llama_server(gguf: Path, args: argparse.Namespace) -> tuple[float, float]:
    """Seconds from exec to ready, and to the first request's answer."""
    port = _port()
    log = (Path(tempfile.gettempdir()) / "stratus-bench-cold-cpp.log").open("w")
    started = time.perf_counter()
    proc = subprocess.Popen(cpp_command(gguf, port, slots=args.slots, threads=args.threads,
                                        context=args.context),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url + "/health", proc, poll=0.01)
        ready = time.perf_counter() - started
        response = httpx.post(url + "/completion", timeout=300,
                              json={"prompt": PROMPT, "n_predict": 1, "temperature": 0})
        response.raise_for_status()
        return ready, time.perf_counter() - started
    finally:
        stop(proc)


def stratus_rounds(slug: str, source: str, options: list[str], args: argparse.Namespace,
                   ) -> list[tuple[float, float, float]]:
    """Per round: the load (cold_start_ms, s), the cold request and the warm one (s)."""
    data = Path(tempfile.mkdtemp(prefix="stratus-bench-cold-"))
    (data / "config.toml").write_text("\n".join([
        "[[models]]", 'slug = "echo"',  # the first model: loaded at start
        "[[models]]", f'slug = "{slug}"', 'engine = "llamacpp"', f'weights = "{source}"',
        f"context_length = {args.context}", f"batch_slots = {args.slots}",
        'load = "on_demand"', "idle_unload = 1",
        "[models.options]", f"n_threads = {args.threads}", *options, ""]))
    port = _port()
    log = (Path(tempfile.gettempdir()) / "stratus-bench-cold-stratus.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stratus", "serve", "--config", str(data / "config.toml"),
         "--data-dir", str(args.cache), "--port", str(port), "--log-level", "warning",
         "--no-access-log"],
        env={**os.environ, "STRATUS_BOOTSTRAP_KEY": KEY, "STRATUS_DATABASE_URL":
             f"sqlite:///{data / 'stratus.db'}"}, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    rounds = []
    try:
        wait_ready(url + "/ready", proc)
        with httpx.Client(base_url=url, headers={"x-api-key": KEY}, timeout=300) as http:
            body = {"model": slug, "max_tokens": 1, "temperature": 0,
                    "messages": [{"role": "user", "content": PROMPT}]}
            for _ in range(args.rounds):
                deadline = time.monotonic() + 120
                while http.get(f"/v1/models/{slug}").json()["status"]["state"] != "unloaded":
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{slug} was not unloaded")
                    time.sleep(0.05)
                started = time.perf_counter()
                cold = http.post("/v1/messages", json=body)
                cold_s = time.perf_counter() - started
                cold.raise_for_status()
                job = http.get(f"/v2/requests/{cold.headers['request-id']}").json()
                started = time.perf_counter()
                http.post("/v1/messages", json=body).raise_for_status()
                warm_s = time.perf_counter() - started
                rounds.append((job["metrics"]["cold_start_ms"] / 1000, cold_s, warm_s))
    finally:
        stop(proc)
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--cache", type=Path, default=CACHE / "data",
                        help="where the packaged models are assembled (once)")
    args = parser.parse_args()
    median = statistics.median
    rows = []
    for slug in args.models:
        source, options = MODELS[slug]
        gguf = weights.resolve(source, args.cache)
        cpp = [llama_server(gguf, args) for _ in range(args.rounds)]
        ours = stratus_rounds(slug, source, options, args)
        load = median(r[0] for r in ours)
        cold, warm = median(r[1] for r in ours), median(r[2] for r in ours)
        start, first = median(c[0] for c in cpp), median(c[1] for c in cpp)
        rows.append((slug, f"{gguf.stat().st_size / 2**20:.0f} MiB", start, first, load,
                     load / start, cold, warm, cold - warm))
    print(f"\nmedians of {args.rounds} rounds; {args.slots} slots x {args.context} tokens, "
          f"{args.threads} threads\n")
    print("| model | GGUF | llama-server start-up | llama-server start + first request "
          "| Stratus load (cold_start_ms) | load / llama-server start-up "
          "| Stratus first request after unload | warm request | added by the cold start |")
    print("|---|---|---|---|---|---|---|---|---|")
    for slug, size, start, first, load, ratio, cold, warm, added in rows:
        print(f"| {slug} | {size} | {start:.2f} s | {first:.2f} s | {load:.2f} s | "
              f"{ratio:.2f}x | {cold:.2f} s | {warm:.3f} s | {added:.2f} s |")


if __name__ == "__main__":
    main()
