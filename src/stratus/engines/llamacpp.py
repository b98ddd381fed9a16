"""llama.cpp in-process, with continuous batching.

One engine thread owns one context with ``batch_slots`` sequence slots. Each step packs the
next token of every running sequence, plus a chunk of each waiting prompt, into a single
``llama_decode``; new requests join between steps and finished or cancelled ones leave, so a
long prompt never stalls running generations for more than a chunk. Every model in the process
decodes under one compute lock: two decodes at once on the same cores run many times slower
than one after the other.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import logging
import os
import random
import threading
from collections import deque
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp as lc

from stratus.config import ModelConfig
from stratus.engines._chat import ChatFormat, GemmaFormat, TemplateFormat
from stratus.engines._stops import StopMatcher
from stratus.engines._types import (
    EngineEvent,
    Finished,
    GenerationRequest,
    StopReason,
    TextDelta,
)
from stratus.weights import resolve

log = logging.getLogger("stratus.engines.llamacpp")

_OPTIONS = {"n_threads", "prefill_chunk", "chat_format", "seed"}
_FORMATS = {"auto", "gemma", "template"}


class EngineError(RuntimeError):
    pass


_GGML_ERROR = 4  # ggml_log_level: NONE, DEBUG, INFO, WARN, ERROR, CONT
_llama_log = logging.getLogger("stratus.engines.llama_cpp")


@lc.llama_log_callback
def _log_callback(level: int, text: bytes, _: ctypes.c_void_p) -> None:
    """llama.cpp's own log: errors to our log, the rest (load chatter) to debug."""
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        _llama_log.log(logging.ERROR if level == _GGML_ERROR else logging.DEBUG, message)


def default_threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass(eq=False)
class _Sequence:
    """One request inside the engine thread."""

    tokens: list[int]
    request: GenerationRequest
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[EngineEvent | BaseException]
    slot: int = -1
    fed: int = 0  # prompt tokens already decoded
    pending: int | None = None  # the last sampled token, to be decoded next step
    generated: int = 0
    sampler: Any = None
    matcher: StopMatcher = field(default_factory=lambda: StopMatcher(()))
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    cancelled: bool = False
    finished: bool = False
    batch_index: int = -1  # where its logits are in the current batch, or -1
    outbox: list[EngineEvent | BaseException] = field(default_factory=list)

    def send(self, event: EngineEvent | BaseException) -> None:
        self.outbox.append(event)

    def flush(self) -> None:
        _flush([self])


def _flush(seqs: list[_Sequence]) -> None:
    """Hand a step's events to their event loops: one wake-up per loop, not per token."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, list[Any]]]] = {}
    for seq in seqs:
        if seq.outbox:
            by_loop.setdefault(seq.loop, []).append((seq.queue, seq.outbox))
            seq.outbox = []
    for loop, batches in by_loop.items():
        loop.call_soon_threadsafe(_deliver, batches)


def _deliver(batches: list[tuple[asyncio.Queue[Any], list[Any]]]) -> None:
    for queue, events in batches:
        for event in events:
            queue.put_nowait(event)


class LlamaCppEngine:
    def __init__(self, config: ModelConfig, data_dir: Path, compute_lock: threading.Lock) -> None:
        options = dict(config.options)
        unknown = set(options) - _OPTIONS
        if unknown:
            raise ValueError(f"model {config.slug!r}: unknown llamacpp option(s): "
                             f"{', '.join(sorted(unknown))}")
        if not config.weights:
            raise ValueError(f"model {config.slug!r}: the llamacpp engine needs `weights`")
        self.config = config
        self._data_dir = data_dir
        self._lock = compute_lock
        self._threads = int(options.get("n_threads") or default_threads())
        self._chunk = int(options.get("prefill_chunk", 256))
        self._format_name = options.get("chat_format", "auto")
        if self._format_name not in _FORMATS:
            raise ValueError(f"model {config.slug!r}: chat_format must be one of "
                             f"{', '.join(sorted(_FORMATS))}")
        self._seed = options.get("seed")
        self._slots = config.batch_slots
        self._model: Any = None
        self._ctx: Any = None
        self._vocab: Any = None
        self._memory: Any = None
        self._batch: Any = None
        self._format: ChatFormat | None = None
        self._add_bos = True
        self._longest_piece = 0  # bytes of the vocabulary's longest token
        # prompts are tokenized on a thread of their own, never queued behind other work
        self._tokenizer = ThreadPoolExecutor(max_workers=1,
                                             thread_name_prefix=f"tokenize-{config.slug}")
        self._inbox: deque[_Sequence] = deque()
        self._wake = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, generate: bool = True) -> None:
        await asyncio.to_thread(self._load, generate)
        if not generate:
            return
        self._running = True
        self._thread = threading.Thread(target=self._loop, name=f"engine-{self.config.slug}",
                                        daemon=True)
        self._thread.start()

    def _load(self, generate: bool) -> None:
        path = resolve(self.config.weights or "", self._data_dir)
        lc.llama_log_set(_log_callback, ctypes.c_void_p(0))
        lc.llama_backend_init()
        mparams = lc.llama_model_default_params()
        # llama.cpp's repacked (AMX) weight buffers crash on the first decode on these CPUs.
        mparams.use_extra_bufts = False
        mparams.vocab_only = not generate
        model = lc.llama_model_load_from_file(str(path).encode(), mparams)
        if not model:
            raise EngineError(f"llama.cpp could not load {path}")
        if not generate:  # the tokenizer and chat template only
            self._model = model
            self._vocab = lc.llama_model_get_vocab(model)
            self._tokenizer_ready()
            log.info("loaded the tokenizer of %s from %s", self.config.slug, path)
            return
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = self.config.context_length * self._slots
        cparams.n_seq_max = self._slots
        cparams.n_batch = max(self._chunk + self._slots, 512)
        cparams.n_ubatch = cparams.n_batch
        cparams.n_threads = self._threads
        cparams.n_threads_batch = self._threads
        # One KV pool shared by the slots, with flash attention: measured faster here for
        # batched decoding than a separate cache per slot (bench/serving.py).
        cparams.kv_unified = True
        cparams.flash_attn_type = 1
        ctx = lc.llama_init_from_model(model, cparams)
        if not ctx:
            lc.llama_model_free(model)
            raise EngineError(f"llama.cpp could not create a context for {path}")
        self._model, self._ctx = model, ctx
        self._vocab = lc.llama_model_get_vocab(model)
        self._memory = lc.llama_get_memory(ctx)
        self._batch = lc.llama_batch_init(cparams.n_batch, 0, 1)
        self._batch_capacity = cparams.n_batch
        self._tokenizer_ready()
        log.info("loaded %s from %s (%d slots x %d tokens, %d threads)", self.config.slug,
                 path, self._slots, self.config.context_length, self._threads)

    def _tokenizer_ready(self) -> None:
        self._add_bos = bool(lc.llama_vocab_get_add_bos(self._vocab))
        self._format = self._chat_format()
        self._longest_piece = max(
            len(self._piece_bytes(token)) for token in range(lc.llama_vocab_n_tokens(self._vocab)))

    def _chat_format(self) -> ChatFormat:
        name = self._format_name
        template = self._meta("tokenizer.chat_template")
        if name == "gemma" or (name == "auto" and not template):
            return GemmaFormat()
        if not template:
            raise EngineError(f"model {self.config.slug!r} has no chat template; "
                              "set options.chat_format = \"gemma\"")
        return TemplateFormat(template, self._piece(lc.llama_vocab_bos(self._vocab), True),
                              self._piece(lc.llama_vocab_eos(self._vocab), True))

    async def close(self) -> None:
        with self._wake:
            self._running = False
            self._wake.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._tokenizer.shutdown(wait=False, cancel_futures=True)
        if self._batch is not None:
            lc.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            lc.llama_free(self._ctx)
            self._ctx = None
        if self._model is not None:
            lc.llama_model_free(self._model)
            self._model = None

    # -- tokens ------------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        size = 1 << 16
        buf = ctypes.create_string_buffer(size)
        n = lc.llama_model_meta_val_str(self._model, key.encode(), buf, size)
        if n < 0:
            return None
        if n >= size:
            buf = ctypes.create_string_buffer(n + 1)
            lc.llama_model_meta_val_str(self._model, key.encode(), buf, n + 1)
        return buf.value.decode("utf-8", errors="replace")

    def tokenize(self, text: str, special: bool = True, bos: bool = True) -> list[int]:
        """``special``: control tokens written in ``text`` are parsed as such (the chat
        format's own text only). ``bos``: start with the model's BOS if it wants one."""
        data = text.encode()
        add_bos = self._add_bos and bos
        bos_text = self._piece(lc.llama_vocab_bos(self._vocab), True) if add_bos else ""
        if bos_text and special and text.startswith(bos_text):
            add_bos = False  # the template wrote it already
        n_max = len(data) + 16
        tokens = (lc.llama_token * n_max)()
        n = lc.llama_tokenize(self._vocab, data, len(data), tokens, n_max, add_bos, special)
        if n < 0:
            n_max = -n
            tokens = (lc.llama_token * n_max)()
            n = lc.llama_tokenize(self._vocab, data, len(data), tokens, n_max, add_bos, special)
        return list(tokens[:n])

    def _piece_bytes(self, token: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = lc.llama_token_to_piece(self._vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self._vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def _piece(self, token: int, special: bool = False) -> str:
        if token < 0:
            return ""
        return self._piece_bytes(token, special).decode("utf-8", errors="replace")

    def prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """The prompt's tokens: the chat format's text parsed for control tokens, the
        conversation's content never (a client cannot write a turn marker)."""
        assert self._format is not None, "engine not started"
        merged: list[list[Any]] = []
        for segment in self._format.segments(request):
            if merged and merged[-1][1] == segment.special:
                merged[-1][0] += segment.text
            elif segment.text:
                merged.append([segment.text, segment.special])
        tokens: list[int] = []
        for i, (text, special) in enumerate(merged):
            tokens += self.tokenize(text, special=special, bos=i == 0)
        return tokens

    def count_tokens(self, request: GenerationRequest) -> int:
        return len(self.prompt_tokens(request))

    def min_tokens(self, chars: int) -> int:
        return chars // self._longest_piece if self._longest_piece else 0

    # -- requests ------------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        tokens = await asyncio.get_running_loop().run_in_executor(
            self._tokenizer, self.prompt_tokens, request)
        if len(tokens) + request.max_tokens > self.config.context_length:
            raise EngineError(f"prompt of {len(tokens)} tokens plus max_tokens "
                              f"{request.max_tokens} exceeds the context of "
                              f"{self.config.context_length}")
        seq = _Sequence(tokens=tokens, request=request, loop=asyncio.get_running_loop(),
                        queue=asyncio.Queue(), matcher=StopMatcher(request.stop_sequences))
        with self._wake:
            if not self._running:
                raise EngineError(f"engine {self.config.slug!r} is not running")
            self._inbox.append(seq)
            self._wake.notify()
        try:
            while True:
                event = await seq.queue.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            seq.cancelled = True
            with self._wake:
                self._wake.notify()

    # -- the engine thread -------------------------------------------------------------------

    def _loop(self) -> None:
        active: list[_Sequence] = []
        free = list(range(self._slots))
        while True:
            with self._wake:
                while self._running and not active and not self._inbox:
                    self._wake.wait()
                if not self._running:
                    break
                admitted = []
                while self._inbox and free:
                    seq = self._inbox.popleft()
                    if not seq.cancelled:
                        seq.slot = free.pop(0)
                        admitted.append(seq)
            active.extend(admitted)
            try:
                for seq in admitted:
                    seq.sampler = self._sampler(seq.request)
                for seq in [s for s in active if s.cancelled]:
                    self._release(seq, active, free)
                if active:
                    self._step(active)
                    _flush(active)
                    for seq in [s for s in active if s.finished]:
                        self._release(seq, active, free)
            except Exception as exc:  # fail what was running; the engine goes on
                log.exception("engine step failed on %s", self.config.slug)
                for seq in list(active):
                    seq.send(EngineError(f"llama.cpp failed: {exc}"))
                    seq.flush()
                    self._release(seq, active, free)
        for seq in list(active):
            seq.send(EngineError("the engine stopped"))
            seq.flush()
            self._release(seq, active, free)

    def _release(self, seq: _Sequence, active: list[_Sequence], free: list[int]) -> None:
        lc.llama_memory_seq_rm(self._memory, seq.slot, -1, -1)
        if seq.sampler is not None:
            lc.llama_sampler_free(seq.sampler)
            seq.sampler = None
        active.remove(seq)
        free.append(seq.slot)
        free.sort()

    def _step(self, active: list[_Sequence]) -> None:
        batch = self._batch
        n = 0

        def add(token: int, pos: int, seq: _Sequence, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = pos
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = seq.slot
            batch.logits[n] = logits
            if logits:
                seq.batch_index = n
            n += 1

        for seq in active:
            seq.batch_index = -1
            if seq.pending is not None:
                add(seq.pending, len(seq.tokens) + seq.generated - 1, seq, True)
        budget = min(self._batch_capacity - n, self._chunk)  # prompt tokens this step
        for seq in active:
            left = len(seq.tokens) - seq.fed
            if seq.pending is not None or left == 0 or budget <= 0:
                continue
            take = min(left, budget)
            for i in range(seq.fed, seq.fed + take):
                add(seq.tokens[i], i, seq, i == len(seq.tokens) - 1)
            seq.fed += take
            budget -= take
        batch.n_tokens = n
        with self._lock:
            status = lc.llama_decode(self._ctx, batch)
        if status != 0:
            raise EngineError(f"llama_decode returned {status}")
        for seq in active:
            if seq.batch_index >= 0:
                self._sample(seq)

    def _sample(self, seq: _Sequence) -> None:
        token = lc.llama_sampler_sample(seq.sampler, self._ctx, seq.batch_index)
        reason: StopReason | None = None
        if lc.llama_vocab_is_eog(self._vocab, token):
            reason = "end_turn"
        else:
            seq.generated += 1
            text = seq.decoder.decode(self._piece_bytes(token))
            safe = seq.matcher.feed(text) if text else ""
            if safe:
                seq.send(TextDelta(safe, len(seq.tokens), seq.generated))
            if seq.matcher.matched is not None:
                reason = "stop_sequence"
            elif seq.generated >= seq.request.max_tokens:
                reason = "max_tokens"
        if reason is None:
            seq.pending = token
            return
        if reason != "stop_sequence":
            rest = seq.matcher.feed(seq.decoder.decode(b"", final=True)) + seq.matcher.flush()
            if rest:
                seq.send(TextDelta(rest, len(seq.tokens), seq.generated))
        seq.send(Finished(stop_reason=reason, input_tokens=len(seq.tokens),
                          output_tokens=seq.generated, stop_sequence=seq.matcher.matched))
        seq.pending = None
        seq.finished = True  # released after this step

    def _sampler(self, request: GenerationRequest) -> Any:
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        temperature = 1.0 if request.temperature is None else request.temperature
        if temperature <= 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
            return chain
        if request.top_k:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(request.top_k))
        if request.top_p is not None and request.top_p < 1.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(request.top_p, 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(temperature))
        seed = request.seed if request.seed is not None else self._seed
        if seed is None:
            seed = random.getrandbits(32)
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain
