"""Prompt reuse and sampling cost: Stratus against llama.cpp's C++ ``llama-server`` (built
once by ``_cpp_server.py``), one after the other in one run, same GGUF, threads and slots.

    .venv/bin/python bench/prompt_reuse.py             # gemma-3-270m, 2 threads, 8 slots

- **shared prefix**: one 600-word system prompt, then five short questions asked one after
  the other (max_tokens 1): the first pays the prefill, the follow-ups should not;
- **conversation**: ten turns, each sending the whole history so far (max_tokens 32, greedy):
  TTFT per turn, which should stay flat as the history grows;
- **sampling**: 8 clients at temperature 0.7 against the same at temperature 0: output tok/s.

TTFT is measured at the client, on the stream.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _prompts import PROMPTS
from _systems import System, cpp_server, stratus

WORDS = ["river", "stone", "light", "market", "harbour", "garden", "winter", "bridge",
         "lantern", "orchard", "valley", "letter", "mirror", "window", "signal", "thunder",
         "meadow", "compass", "canvas", "ladder"]
SYSTEM = " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(600))
QUESTIONS = ["What is the first word?", "Name a colour.", "Say yes.", "Pick a number.",
             "Name an animal."]


async def shared_prefix(system: System) -> list[float]:
    async with httpx.AsyncClient(timeout=600) as http:
        return [(await system.chat(http, [{"role": "user", "content": q}], system=SYSTEM,
                                   max_tokens=1)).ttft for q in QUESTIONS]


async def conversation(system: System, turns: int = 10) -> list[float]:
    history: list[dict] = []
    ttfts = []
    async with httpx.AsyncClient(timeout=600) as http:
        for turn in range(turns):
            history.append({"role": "user",
                            "content": f"Tell me one fact about {WORDS[turn]}s."})
            reply = await system.chat(http, history, max_tokens=32)
            history.append({"role": "assistant", "content": reply.text or "..."})
            ttfts.append(reply.ttft)
    return ttfts


async def sampling(system: System, temperature: float, clients: int = 8,
                   per_client: int = 3, max_tokens: int = 64) -> float:
    tokens = 0

    async def client(i: int, http: httpx.AsyncClient) -> None:
        nonlocal tokens
        for j in range(per_client):
            prompt = PROMPTS[(i + j) % len(PROMPTS)]
            reply = await system.chat(http, [{"role": "user", "content": prompt}],
                                      max_tokens=max_tokens, temperature=temperature)
            tokens += reply.output_tokens

    async with httpx.AsyncClient(timeout=600) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        return tokens / (time.perf_counter() - started)


def measure(system: System) -> dict[str, object]:
    asyncio.run(sampling(system, 0.0, clients=2, per_client=1, max_tokens=8))  # warm up
    return {"prefix": asyncio.run(shared_prefix(system)),
            "turns": asyncio.run(conversation(system)),
            "greedy": asyncio.run(sampling(system, 0.0)),
            "t0.7": asyncio.run(sampling(system, 0.7))}


def report(results: dict[str, dict]) -> None:
    names = list(results)
    print(f"\n{'':34}" + "".join(f"{n:>16}" for n in names))

    def row(label: str, values: list[float], fmt: str = "{:16.3f}") -> None:
        print(f"{label:34}" + "".join(fmt.format(v) for v in values))

    row("shared prefix: first TTFT (s)", [r["prefix"][0] for r in results.values()])
    row("shared prefix: follow-up TTFT (s)",
        [statistics.mean(r["prefix"][1:]) for r in results.values()])
    for turn in (1, 2, 5, 10):
        row(f"conversation: turn {turn} TTFT (s)",
            [r["turns"][turn - 1] for r in results.values()])
    row("conversation: turn 10 / turn 2", [r["turns"][9] / r["turns"][1]
                                           for r in results.values()], "{:15.2f}x")
    row("C=8 greedy (out tok/s)", [r["greedy"] for r in results.values()], "{:16.1f}")
    row("C=8 temperature 0.7 (out tok/s)", [r["t0.7"] for r in results.values()], "{:16.1f}")
    row("temperature 0.7 / greedy", [r["t0.7"] / r["greedy"] for r in results.values()],
        "{:15.2f}x")
    if len(names) == 2:
        ours, peer = results[names[0]], results[names[1]]
        follow = statistics.mean(ours["prefix"][1:]) / statistics.mean(peer["prefix"][1:])
        print(f"\nstratus / llama-server follow-up TTFT: {follow:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gguf", default="package:gemma-3-270m")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--port", type=int, default=8795)
    parser.add_argument("--only", nargs="+", choices=["stratus", "llama-server"],
                        default=["stratus", "llama-server"])
    args = parser.parse_args()
    from stratus.weights import resolve

    gguf = resolve(args.gguf, Path(tempfile.gettempdir()) / "stratus-bench-cache")
    results: dict[str, dict] = {}
    for name, start in (("stratus", stratus), ("llama-server", cpp_server)):
        if name in args.only:
            with start(gguf, args.port, slots=args.slots, threads=args.threads) as system:
                results[name] = measure(system)
                if system.retries:
                    print(f"{name}: {system.retries} request(s) retried after a connection "
                          "closed before any response")
    print(f"model {gguf.name}, {args.threads} threads, {args.slots} slots")
    report(results)


if __name__ == "__main__":
    main()
