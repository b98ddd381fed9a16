"""Serving benchmark: Stratus against llama.cpp's C++ llama-server, llama_cpp.server and a
raw batched-decode loop.

    .venv/bin/python bench/serving.py                 # gemma-3-270m, C = 1 4 8 16
    .venv/bin/python bench/serving.py --concurrency 1 8 --max-tokens 64

All run the same GGUF with the same threads and flash attention, one after the other (never
two llama.cpp compute loops at once), on the same prompts, greedy. llama-server (built once
by ``_cpp_server.py`` from the llama.cpp that llama-cpp-python vendors) runs ``-np`` equal to
Stratus's ``batch_slots``. llama_cpp.server queues concurrent requests
(``--interrupt_requests False``; by default a new request cuts off the running one). Metrics
use vLLM's names:

- request throughput: completed requests per second;
- output tok/s: output tokens of all requests per second of the whole run;
- TTFT: time to first token, measured at the client on the stream (Stratus: ``/v1/messages``
  with ``stream``); the raw loop has no queue: its TTFT is the prefill of the batch.
- TPOT: time per output token after the first: (latency - TTFT) / (output tokens - 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _prompts import PROMPTS
from _systems import cpp_server, stop, stratus, wait_ready

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


# -- Stratus and llama-server: a streamed chat, timed at the client ---------------------------

def bench_streaming(args: argparse.Namespace, gguf: Path, start: Any) -> list[Result]:
    with start(gguf, args.port, slots=args.slots, threads=args.threads,
               context=1024) as system:
        async def call(http: httpx.AsyncClient, prompt: str) -> Sample:
            reply = await system.chat(http, [{"role": "user", "content": prompt}],
                                      max_tokens=args.max_tokens)
            return Sample(reply.latency, reply.ttft, reply.output_tokens)

        return _levels(system.name, args, {}, call)


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
        wait_ready(url + "/v1/models", proc)
        return _levels("llama_cpp.server", args, {"base_url": url}, call)
    finally:
        stop(proc)


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
    parser.add_argument("--only", nargs="+",
                        choices=["stratus", "llama-server", "llama_cpp.server", "raw"],
                        default=["stratus", "llama-server", "llama_cpp.server", "raw"])
    args = parser.parse_args()

    from stratus.weights import resolve

    gguf = resolve(args.gguf, Path(tempfile.gettempdir()) / "stratus-bench-cache")
    results: list[Result] = []
    if "stratus" in args.only:
        results += bench_streaming(args, gguf, stratus)
    if "llama-server" in args.only:
        results += bench_streaming(args, gguf, cpp_server)
    if "llama_cpp.server" in args.only:
        results += bench_llama_server(args, gguf)
    if "raw" in args.only:
        results += bench_raw(args, gguf)
    print(f"\nmodel {gguf.name}, {args.threads} threads, {args.requests_per_client} requests "
          f"per client, max_tokens {args.max_tokens}, greedy; Stratus batch_slots {args.slots}")
    print_table(results, args.concurrency)


if __name__ == "__main__":
    main()
