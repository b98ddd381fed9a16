"""Serving benchmark: Stratus against llama_cpp.server and a raw batched-decode loop.

    .venv/bin/python bench/serving.py                 # gemma-3-270m, C = 1 4 8 16
    .venv/bin/python bench/serving.py --concurrency 1 8 --max-tokens 64

All three run the same GGUF with the same threads and flash attention, one after the other
(never two llama.cpp compute loops at once), on the same prompts, greedy. llama_cpp.server
queues concurrent requests (``--interrupt_requests False``; by default a new request cuts
off the running one). Metrics use vLLM's names:

- request throughput: completed requests per second;
- output tok/s: output tokens of all requests per second of the whole run;
- TTFT: time to first token. llama_cpp.server streams, so it is measured at the client. Stratus
  (before token streaming) is measured as the client's wait for the queue plus the server's
  ``metrics.ttft_ms``; the raw loop has no queue: its TTFT is the prefill of the batch.
- TPOT: time per output token after the first: (latency - TTFT) / (output tokens - 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from _prompts import PROMPTS

HERE = Path(__file__).resolve().parent


@dataclass
class Sample:
    latency: float
    ttft: float
    output_tokens: int


@dataclass
class Result:
    system: str
    concurrency: int
    duration: float
    samples: list[Sample]

    def row(self) -> dict[str, float]:
        out = sum(s.output_tokens for s in self.samples)
        ttft = [s.ttft * 1000 for s in self.samples]
        tpot = [(s.latency - s.ttft) * 1000 / (s.output_tokens - 1)
                for s in self.samples if s.output_tokens > 1]
        return {
            "req/s": len(self.samples) / self.duration,
            "out tok/s": out / self.duration,
            "TTFT mean": statistics.mean(ttft), "TTFT median": statistics.median(ttft),
            "TTFT p99": _p99(ttft),
            "TPOT mean": statistics.mean(tpot) if tpot else float("nan"),
            "TPOT median": statistics.median(tpot) if tpot else float("nan"),
            "TPOT p99": _p99(tpot) if tpot else float("nan"),
        }


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


Call = Callable[[httpx.AsyncClient, str], Awaitable[Sample]]


def _levels(system: str, args: argparse.Namespace, http_args: dict, call: Call) -> list[Result]:
    """Every concurrency level: C clients, each sending its requests one after another."""

    async def level(concurrency: int) -> Result:
        samples: list[Sample] = []
        async with httpx.AsyncClient(timeout=600, **http_args) as http:
            async def client(i: int) -> None:
                for j in range(args.requests_per_client):
                    samples.append(await call(http, PROMPTS[(i + j) % len(PROMPTS)]))

            started = time.perf_counter()
            await asyncio.gather(*(client(i) for i in range(concurrency)))
        return Result(system, concurrency, time.perf_counter() - started, samples)

    return [asyncio.run(level(c)) for c in args.concurrency]


# -- Stratus -----------------------------------------------------------------------------------

def bench_stratus(args: argparse.Namespace, gguf: Path) -> list[Result]:
    data = Path(tempfile.mkdtemp(prefix="stratus-bench-"))
    config = data / "config.toml"
    config.write_text(
        "[server]\nsync_timeout = 600\n\n[[models]]\nslug = \"gemma-3-270m\"\n"
        f"engine = \"llamacpp\"\nweights = \"{gguf}\"\ncontext_length = 1024\n"
        f"max_output_tokens = 1024\nbatch_slots = {args.slots}\n"
        f"[models.options]\nchat_format = \"gemma\"\nn_threads = {args.threads}\n")
    port = args.port
    key = "sk-stratus-bench-key-000001"
    env = {**os.environ, "STRATUS_BOOTSTRAP_KEY": key}
    proc = subprocess.Popen([sys.executable, "-m", "stratus", "serve", "--config", str(config),
                             "--data-dir", str(data), "--port", str(port), "--log-level",
                             "warning", "--no-access-log"], env=env,
                            stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    async def call(http: httpx.AsyncClient, prompt: str) -> Sample:
        t0 = time.perf_counter()
        reply = await http.post("/v2/gemma-3-270m", json={
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": args.max_tokens, "temperature": 0})
        rid = reply.json()["request_id"]
        status = (await http.get(f"/v2/requests/{rid}/status")).json()
        while status["status"] not in ("COMPLETED", "FAILED"):
            status = (await http.get(f"/v2/requests/{rid}/status", params={"wait": 60})).json()
        metrics = (await http.get(f"/v2/requests/{rid}")).json()["metrics"]
        ttft = (metrics["queue_ms"] + metrics["ttft_ms"]) / 1000
        return Sample(time.perf_counter() - t0, ttft, metrics["output_tokens"])

    try:
        _wait_ready(url + "/ready", proc)
        return _levels("stratus", args, {"base_url": url, "headers": {"x-api-key": key}},
                       call)
    finally:
        _stop(proc)


# -- llama_cpp.server --------------------------------------------------------------------------

def bench_llama_server(args: argparse.Namespace, gguf: Path) -> list[Result]:
    port = args.port + 1
    log = (Path(tempfile.gettempdir()) / "stratus-bench-llama-server.log").open("w")
    proc = subprocess.Popen([sys.executable, str(HERE / "_llama_server.py"), "--model",
                             str(gguf), "--port", str(port), "--n_threads", str(args.threads),
                             "--n_threads_batch", str(args.threads), "--n_ctx", "2048",
                             "--chat_format", "gemma", "--interrupt_requests", "False",
                             "--flash_attn", "True"],
                            stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    async def call(http: httpx.AsyncClient, prompt: str) -> Sample:
        t0 = time.perf_counter()
        ttft, tokens = None, 0
        async with http.stream("POST", "/v1/chat/completions", json={
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": args.max_tokens, "temperature": 0, "stream": True}) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                if json.loads(line[6:])["choices"][0]["delta"].get("content"):
                    ttft = ttft or time.perf_counter() - t0
                    tokens += 1  # llama_cpp.server streams one token per chunk
        latency = time.perf_counter() - t0
        return Sample(latency, ttft or latency, tokens)

    try:
        _wait_ready(url + "/v1/models", proc)
        return _levels("llama_cpp.server", args, {"base_url": url}, call)
    finally:
        _stop(proc)


# -- raw batched decode ------------------------------------------------------------------------

def bench_raw(args: argparse.Namespace, gguf: Path) -> list[Result]:
    out = subprocess.run([sys.executable, str(HERE / "_raw_loop.py"), str(gguf),
                          "--threads", str(args.threads), "--max-tokens", str(args.max_tokens),
                          "--requests-per-client", str(args.requests_per_client),
                          "--concurrency", *map(str, args.concurrency)],
                         capture_output=True, text=True, check=True)
    results = []
    for line in out.stdout.splitlines():
        rec = json.loads(line)
        samples = [Sample(**s) for s in rec["samples"]]
        results.append(Result("raw loop", rec["concurrency"], rec["duration"], samples))
    return results


def print_table(results: list[Result], concurrency: list[int]) -> None:
    systems = list(dict.fromkeys(r.system for r in results))
    metrics = list(results[0].row())
    for c in concurrency:
        rows = {r.system: r.row() for r in results if r.concurrency == c}
        print(f"\nC = {c}")
        print(f"{'metric':14}" + "".join(f"{s:>18}" for s in systems))
        for metric in metrics:
            unit = " (ms)" if metric.startswith(("TTFT", "TPOT")) else ""
            cells = "".join(f"{rows[s][metric]:>18.2f}" if s in rows else f"{'-':>18}"
                            for s in systems)
            print(f"{metric + unit:14}{cells}")
        if "stratus" in rows:
            ours = rows["stratus"]["out tok/s"]
            for other in systems[1:]:
                if other in rows:
                    print(f"  stratus / {other} output tok/s: "
                          f"{ours / rows[other]['out tok/s']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", default="package:gemma-3-270m",
                        help="a GGUF path or package:NAME (default package:gemma-3-270m)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--requests-per-client", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--slots", type=int, default=8, help="Stratus batch_slots")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--only", nargs="+", choices=["stratus", "llama_cpp.server", "raw"],
                        default=["stratus", "llama_cpp.server", "raw"])
    args = parser.parse_args()

    from stratus.weights import resolve

    gguf = resolve(args.gguf, Path(tempfile.gettempdir()) / "stratus-bench-cache")
    results: list[Result] = []
    if "stratus" in args.only:
        results += bench_stratus(args, gguf)
    if "llama_cpp.server" in args.only:
        results += bench_llama_server(args, gguf)
    if "raw" in args.only:
        results += bench_raw(args, gguf)
    print(f"\nmodel {gguf.name}, {args.threads} threads, {args.requests_per_client} requests "
          f"per client, max_tokens {args.max_tokens}, greedy; Stratus batch_slots {args.slots}")
    print_table(results, args.concurrency)


if __name__ == "__main__":
    main()
