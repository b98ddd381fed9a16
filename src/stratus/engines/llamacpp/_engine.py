"""The llama.cpp engine: requests in from the event loop, events out to it, one engine
thread in between running the :class:`~stratus.engines.llamacpp._scheduler.Scheduler`."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from stratus.config import ModelConfig
from stratus.engines._chat import ChatFormat, GemmaFormat, TemplateFormat
from stratus.engines._options import LlamaCppOptions
from stratus.engines._types import (
    READY,
    EngineEvent,
    EngineHealth,
    Finished,
    GenerationRequest,
    OutputFormat,
    RequestRejected,
    TextDelta,
)
from stratus.engines.llamacpp._native import Draw, EngineError, LlamaBackend, Native
from stratus.engines.llamacpp._scheduler import Scheduler, Sequence
from stratus.engines.llamacpp._tools import CallParser, call_grammar, json_grammar, trigger
from stratus.weights import resolve

log = logging.getLogger("stratus.engines.llamacpp")
INLINE_CHARS = 8 * 1024  # a prompt this short is tokenized on the caller's thread



@functools.lru_cache(maxsize=64)
def _gbnf(schema: str) -> str:
    return json_grammar(json.loads(schema))


def grammar_of(fmt: OutputFormat | None) -> str | None:
    """The grammar (GBNF) that only lets through what ``fmt`` allows: any JSON object, or
    one that validates against its schema."""
    if fmt is None:
        return None
    schema = fmt.json_schema if fmt.type == "json_schema" else {"type": "object"}
    return _gbnf(json.dumps(schema))  # the schema's own order: the answer's keys keep it


def _with_calls(parser: CallParser, event: EngineEvent) -> list[EngineEvent]:
    """An event of a request that may call tools: its text less the calls, the calls whole;
    a reply that made calls and ended by itself ends as a tool use."""
    if isinstance(event, TextDelta):  # (with no text left, still the usage so far)
        text, calls = parser.feed(event.text)
        return [TextDelta(text, event.input_tokens, event.output_tokens), *calls]
    if isinstance(event, Finished):
        rest = parser.flush()
        out = [TextDelta(rest, event.input_tokens, event.output_tokens)] if rest else []
        if parser.calls and event.stop_reason == "end_turn":
            event = dataclasses.replace(event, stop_reason="tool_use")
        return [*out, event]
    return [event]


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _flush(seqs: list[Sequence]) -> None:
    """Hand a step's events to their event loops: one wake-up per loop, not per token."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, list[Any]]]] = {}
    for seq in seqs:
        if seq.outbox:
            loop, queue = seq.sink
            by_loop.setdefault(loop, []).append((queue, seq.outbox))
            seq.outbox = []
    for loop, batches in by_loop.items():
        loop.call_soon_threadsafe(_deliver, batches)


def _deliver(batches: list[tuple[asyncio.Queue[Any], list[Any]]]) -> None:
    for queue, events in batches:
        for event in events:
            queue.put_nowait(event)


class LlamaCppEngine:
    def __init__(self, config: ModelConfig, options: LlamaCppOptions, data_dir: Path,
                 compute_lock: threading.Lock) -> None:
        if not config.weights:
            raise ValueError(f"model {config.slug!r}: the llamacpp engine needs `weights`")
        self.config = config
        self._data_dir = data_dir
        self._lock = compute_lock
        self._threads = options.n_threads or default_threads()
        self._chunk = options.prefill_chunk
        self._format_name = options.chat_format
        self._seed = options.seed
        self._reuse = options.prompt_reuse
        self._native: Native | None = None  # what tokenizes (the model itself, if eager)
        self._model: Native | None = None  # what generates, while loaded
        self._path: Path | None = None
        self._format: ChatFormat | None = None
        self._scheduler: Scheduler | None = None
        # prompts are tokenized on a thread of their own, never queued behind other work
        self._tokenizer = ThreadPoolExecutor(max_workers=1,
                                             thread_name_prefix=f"tokenize-{config.slug}")
        self._wake = threading.Condition()
        self._inbox: list[Sequence] = []
        self._running = False
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, generate: bool = True) -> None:
        await asyncio.to_thread(self._load, generate)
        if generate:
            self._start_thread()

    async def load(self) -> None:
        """The weights and the context, beside the tokenizer loaded at start."""
        if self._thread is None:
            await asyncio.to_thread(self._load_model)
            self._start_thread()

    async def unload(self) -> None:
        """Stop the engine thread and free the weights, the context and its KV cache; the
        tokenizer stays, for counting. It ends unloaded, even if freeing fails."""
        if self._model is self._native and self._model is not None:
            raise EngineError(f"model {self.config.slug!r} was loaded at start (eager): it "
                              "is not unloaded")
        try:
            await self._stop_thread()
        finally:
            model, self._model, self._scheduler = self._model, None, None
            if model is not None:
                await asyncio.to_thread(model.close)
                log.info("unloaded %s", self.config.slug)

    def memory_bytes(self) -> int:
        """The weights (the GGUF's size) and the KV cache of every slot."""
        if self._path is None or self._native is None:
            return 0
        tokens = self.config.context_length * self.config.batch_slots
        return self._path.stat().st_size + self._native.kv_bytes(tokens)

    def _start_thread(self) -> None:
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=f"engine-{self.config.slug}",
                                        daemon=True)
        self._thread.start()

    async def _stop_thread(self) -> None:
        with self._wake:
            self._running = False
            self._wake.notify_all()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)

    def _load(self, generate: bool) -> None:
        path = self._path = resolve(self.config.weights or "", self._data_dir)
        native = self._open(path, generate)
        self._native = native
        self._format = self._chat_format(native)
        if self.config.capabilities.tools and not getattr(self._format, "knows_tools", False):
            raise EngineError(f"model {self.config.slug!r} has capabilities.tools but its "
                              "chat template has no tool format: set tools = false")
        if generate:
            self._serve(native)
        else:
            log.info("loaded the tokenizer of %s from %s", self.config.slug, path)

    def _load_model(self) -> None:
        assert self._path is not None, "engine not started"
        model = self._open(self._path, True)
        try:
            self._serve(model)
        except BaseException:
            model.close()
            raise

    def _open(self, path: Path, generate: bool) -> Native:
        return Native(path, slots=self.config.batch_slots,
                      context_length=self.config.context_length, chunk=self._chunk,
                      threads=self._threads, generate=generate)

    def _serve(self, model: Native) -> None:
        self._scheduler = Scheduler(LlamaBackend(model, self._lock, self._seed),
                                    slots=self.config.batch_slots, chunk=self._chunk,
                                    capacity=model.capacity, reuse=self._reuse)
        self._model = model
        log.info("loaded %s from %s (%d slots x %d tokens, %d threads)", self.config.slug,
                 self._path, self.config.batch_slots, self.config.context_length,
                 self._threads)

    def _chat_format(self, native: Native) -> ChatFormat:
        name = self._format_name
        template = native.meta("tokenizer.chat_template")
        if name == "gemma" or (name == "auto" and not template):
            return GemmaFormat()
        if not template:
            raise EngineError(f"model {self.config.slug!r} has no chat template; "
                              "set options.chat_format = \"gemma\"")
        return TemplateFormat(template, native.bos_piece(), native.eos_piece())

    async def close(self) -> None:
        await self._stop_thread()
        self._tokenizer.shutdown(wait=False, cancel_futures=True)
        for native in {id(n): n for n in (self._model, self._native) if n is not None}.values():
            native.close()
        self._model = self._native = None

    def capacity(self) -> int:
        return self.config.batch_slots

    def health(self) -> EngineHealth:
        return READY

    @property
    def generating(self) -> bool:
        """Loaded with its context and engine thread (not only the tokenizer)."""
        return self._thread is not None

    # -- tokens ------------------------------------------------------------------------------

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """The prompt's tokens: the chat format's text parsed for control tokens, the
        conversation's content never (a client cannot write a turn marker)."""
        assert self._format is not None and self._native is not None, "engine not started"
        merged: list[list[Any]] = []
        for segment in self._format.segments(request):
            if merged and merged[-1][1] == segment.special:
                merged[-1][0] += segment.text
            elif segment.text:
                merged.append([segment.text, segment.special])
        tokens: list[int] = []
        for i, (text, special) in enumerate(merged):
            tokens += self._native.tokenize(text, special=special, bos=i == 0)
        return tokens

    async def count_tokens(self, request: GenerationRequest) -> int:
        """Counted in place for a short prompt (a thread hop costs more), else on the
        tokenizer thread."""
        chars = len(request.system or "") + sum(len(m.rendered) for m in request.messages)
        if chars <= INLINE_CHARS:
            return len(self.prompt_tokens(request))
        loop = asyncio.get_running_loop()
        return len(await loop.run_in_executor(self._tokenizer, self.prompt_tokens, request))

    def min_tokens(self, chars: int) -> int:
        longest = self._native.longest_piece if self._native else 0
        return chars // longest if longest else 0

    # -- requests ------------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        loop = asyncio.get_running_loop()
        tokens = await loop.run_in_executor(self._tokenizer, self.prompt_tokens, request)
        if len(tokens) + request.max_tokens > self.config.context_length:
            raise EngineError(f"prompt of {len(tokens)} tokens plus max_tokens "
                              f"{request.max_tokens} exceeds the context of "
                              f"{self.config.context_length}")
        grammar, trigger, parser = self._constraint(request)
        queue: asyncio.Queue[EngineEvent | BaseException] = asyncio.Queue()
        seq = Sequence(tokens=tokens, max_tokens=request.max_tokens,
                       stops=request.stop_sequences, sink=(loop, queue),
                       options=Draw.of(self.config.sampling, request, grammar, trigger))
        with self._wake:
            if not self._running:
                raise EngineError(f"engine {self.config.slug!r} is not running")
            self._inbox.append(seq)
            self._wake.notify()
        try:
            while True:
                event = await queue.get()
                if isinstance(event, BaseException):
                    raise event
                for out in [event] if parser is None else _with_calls(parser, event):
                    yield out
                if isinstance(event, Finished):
                    return
        finally:
            seq.cancelled = True
            with self._wake:
                self._wake.notify()

    def _constraint(self, request: GenerationRequest,
                    ) -> tuple[str | None, str | None, CallParser | None]:
        """The grammar a request's tokens keep to (its structured output, or the tools it
        may call), the token from which a lazy one applies, and the parser of its calls."""
        tools_on = bool(request.tools) and (request.tool_choice is None
                                            or request.tool_choice.type != "none")
        if not tools_on:
            return grammar_of(request.response_format), None, None
        if request.response_format is not None:
            raise RequestRejected(f"model {self.config.slug!r} cannot both call tools and "
                                  "answer in a set format: send tools or a response format")
        if not getattr(self._format, "knows_tools", False):
            raise RequestRejected(f"model {self.config.slug!r} has no chat template for tools")
        choice = request.tool_choice
        forced = choice is not None and choice.type in ("any", "tool")
        names = {t.name for t in request.tools}
        return (call_grammar(request.tools, choice), None if forced else trigger(names),
                CallParser(names))

    # -- the engine thread -------------------------------------------------------------------

    def _loop(self) -> None:
        scheduler = self._scheduler
        assert scheduler is not None
        while True:
            with self._wake:
                while self._running and scheduler.idle and not self._inbox:
                    self._wake.wait()
                if not self._running:
                    break
                for seq in self._inbox:
                    scheduler.add(seq)
                self._inbox.clear()
            try:
                _flush(scheduler.step())
            except Exception as exc:  # a fault of ours, not of a decode: fail what runs
                log.exception("engine step failed on %s", self.config.slug)
                _flush(scheduler.fail_all(EngineError(f"the engine failed: {exc}")))
        _flush(scheduler.fail_all(EngineError("the engine stopped")))
