"""Gateway overhead: Stratus (an ``engine = "openai"`` model entry) against LiteLLM's proxy,
both in front of the same instant OpenAI-compatible upstream, in one run.

    .venv/bin/python bench/gateway.py                        # 1000 requests, 16 clients
    .venv/bin/python bench/gateway.py --requests 2000 --concurrency 32

LiteLLM's proxy is installed once into ``~/.cache/stratus-bench/litellm-venv``
(``pip install 'litellm[proxy]'``: the bench does it if it is missing). The upstream
(``bench/_instant_upstream.py``) answers at once, so what is measured is the gateway: for
Stratus a key check, admission (limits, credits reserved, the request recorded and queued
in SQLite), a claim, the upstream stream relayed through the token stream, completion and
settlement; for LiteLLM its proxy with a master key and no database. Closed-loop clients send
streamed chat completions (OpenAI's surface on both) one after another; latency and TTFT are
measured at the client. "direct" is the upstream itself: the floor. The processes run one
set-up at a time on this machine; compare ratios, not absolute figures, across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests._server import ServerProcess, free_port

HERE = Path(__file__).resolve().parent
LITELLM = Path(os.environ.get("STRATUS_BENCH_CACHE", Path.home() / ".cache" / "stratus-bench")) \
    / "litellm-venv"
LITELLM_VERSION = "1.108.0"  # pinned, so that runs compare the same proxy
MASTER_KEY = "sk-bench-litellm-0001"
STRATUS_CONFIG = """
[server]
sync_timeout = 60

[[models]]
slug = "instant"
engine = "openai"
max_queue = 100000
[models.options]
base_url = "http://127.0.0.1:{port}/v1"
model = "instant"
max_concurrency = 256
"""
LITELLM_CONFIG = """
model_list:
  - model_name: instant
    litellm_params:
      model: openai/instant
      api_base: http://127.0.0.1:{port}/v1
      api_key: none
general_settings:
  master_key: {key}
"""


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    errors: int = 0


def _wait(url: str, timeout: float = 120.0, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


def _litellm_installed() -> Path:
    binary = LITELLM / "bin" / "litellm"
    if not binary.exists():
        print(f"installing LiteLLM {LITELLM_VERSION} into {LITELLM} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM)], check=True)
        subprocess.run([str(LITELLM / "bin" / "pip"), "install", "-q",
                        f"litellm[proxy]=={LITELLM_VERSION}"], check=True)
    return binary


async def _one(http: httpx.AsyncClient, url: str, headers: dict[str, str],
               result: Result) -> None:
    body = {"model": "instant", "max_tokens": 16, "stream": True,
            "messages": [{"role": "user", "content": "What is the answer?"}]}
    started = time.perf_counter()
    first = None
    try:
        async with http.stream("POST", url, json=body, headers=headers) as response:
            if response.status_code != 200:
                await response.aread()
                result.errors += 1
                return
            async for line in response.aiter_lines():
                if first is None and '"content":"' in line.replace(" ", "") \
                        and '"content":""' not in line.replace(" ", ""):
                    first = time.perf_counter()
                if line.strip() == "data: [DONE]":
                    break
    except httpx.HTTPError:
        result.errors += 1
        return
    end = time.perf_counter()
    result.latencies.append(end - started)
    result.ttfts.append((first or end) - started)


async def _drive(name: str, url: str, headers: dict[str, str], requests: int,
                 concurrency: int, warmup: int) -> Result:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits, trust_env=False) as http:
        scratch = Result(name)
        await asyncio.gather(*(_one(http, url, headers, scratch) for _ in range(warmup)))
        result = Result(name)
        left = requests

        async def client() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await _one(http, url, headers, result)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


def _row(result: Result) -> str:
    def ms(values: list[float], q: float) -> str:
        if not values:
            return "-"
        ordered = sorted(values)
        return f"{ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000:7.1f}"

    done = len(result.latencies)
    rate = done / result.seconds if result.seconds else 0.0
    return (f"{result.name:<10} {rate:9.1f} {ms(result.latencies, 0.5)} "
            f"{ms(result.latencies, 0.99)} {ms(result.ttfts, 0.5)} {ms(result.ttfts, 0.99)} "
            f"{result.errors:7d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    litellm = _litellm_installed()
    port = free_port()
    upstream = subprocess.Popen([sys.executable, str(HERE / "_instant_upstream.py"), str(port)])
    results: list[Result] = []
    try:
        _wait(f"http://127.0.0.1:{port}/v1/models")

        def run(name: str, url: str, headers: dict[str, str]) -> None:
            results.append(asyncio.run(_drive(name, url, headers, args.requests,
                                              args.concurrency, args.warmup)))

        run("direct", f"http://127.0.0.1:{port}/v1/chat/completions", {})
        with tempfile.TemporaryDirectory() as tmp:
            stratus = ServerProcess(Path(tmp) / "stratus", STRATUS_CONFIG.format(port=port))
            stratus.start(timeout=60)
            try:
                run("stratus", stratus.url + "/v1/chat/completions",
                    {"authorization": f"Bearer {stratus.key}"})
            finally:
                stratus.kill()
            config = Path(tmp) / "litellm.yaml"
            config.write_text(LITELLM_CONFIG.format(port=port, key=MASTER_KEY))
            lport = free_port()
            env = {**os.environ, "LITELLM_TELEMETRY": "False", "LITELLM_LOG": "ERROR"}
            proxy = subprocess.Popen([str(litellm), "--config", str(config), "--port",
                                      str(lport), "--num_workers", "1"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                auth = {"authorization": f"Bearer {MASTER_KEY}"}
                _wait(f"http://127.0.0.1:{lport}/health/liveliness", 180)
                run("litellm", f"http://127.0.0.1:{lport}/v1/chat/completions", auth)
            finally:
                proxy.terminate()
                proxy.wait(30)
    finally:
        upstream.terminate()
        upstream.wait(10)
    print(f"\n{args.requests} streamed chat completions, {args.concurrency} clients, "
          "an upstream that answers at once")
    print(f"{'system':<10} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'ttft50':>7} "
          f"{'ttft99':>7} {'errors':>7}")
    for result in results:
        print(_row(result))
    rates = {r.name: len(r.latencies) / r.seconds for r in results if r.seconds}
    medians = {r.name: statistics.median(r.latencies) for r in results if r.latencies}
    if rates.get("litellm") and rates.get("stratus"):
        print(f"stratus / litellm throughput: {rates['stratus'] / rates['litellm']:.2f}x")
    for name in ("stratus", "litellm"):
        if name in medians and "direct" in medians:
            print(f"median latency {name} adds over direct: "
                  f"{(medians[name] - medians['direct']) * 1000:.1f} ms")

if __name__ == "__main__":
    main()
