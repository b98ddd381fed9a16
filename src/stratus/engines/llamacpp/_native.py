"""llama.cpp's handles: the model, its context and KV cache, the batch, the tokenizer, and
the sampler chains; :class:`LlamaBackend` is what the scheduler decodes and samples with."""

from __future__ import annotations

import ctypes
import functools
import logging
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp as lc
import numpy as np

from stratus.config import Sampling
from stratus.engines._types import GenerationRequest
from stratus.engines.llamacpp._scheduler import Entry, Sequence

log = logging.getLogger("stratus.engines.llamacpp")

_GGML_ERROR = 4  # ggml_log_level: NONE, DEBUG, INFO, WARN, ERROR, CONT
_llama_log = logging.getLogger("stratus.engines.llama_cpp")
PENALTY_WINDOW = 64  # tokens the repeat penalty looks back over


class EngineError(RuntimeError):
    pass


@lc.llama_log_callback
def _log_callback(level: int, text: bytes, _: ctypes.c_void_p) -> None:
    """llama.cpp's own log: errors to our log, the rest (load chatter) to debug."""
    message = text.decode("utf-8", errors="replace").rstrip()
    if message:
        _llama_log.log(logging.ERROR if level == _GGML_ERROR else logging.DEBUG, message)


@dataclass(frozen=True, slots=True)
class Draw:
    """How one sequence samples: its model's defaults with the request's own values."""

    temperature: float
    top_p: float
    top_k: int
    min_p: float
    repeat_penalty: float
    seed: int | None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    grammar: str | None = None  # GBNF every token keeps to (structured output, tool calls)
    # the grammar applies only once the text matches this pattern (a tool call begins)
    trigger: str | None = None
    window: int = PENALTY_WINDOW  # tokens OpenAI's penalties look back over: the output

    @classmethod
    def of(cls, defaults: Sampling, request: GenerationRequest, grammar: str | None = None,
           trigger: str | None = None) -> Draw:
        return cls(
            temperature=defaults.temperature if request.temperature is None
            else request.temperature,
            top_p=defaults.top_p if request.top_p is None else request.top_p,
            top_k=defaults.top_k if request.top_k is None else request.top_k,
            min_p=defaults.min_p, repeat_penalty=defaults.repeat_penalty, seed=request.seed,
            frequency_penalty=request.frequency_penalty or 0.0,
            presence_penalty=request.presence_penalty or 0.0, grammar=grammar,
            trigger=trigger, window=request.max_tokens)

    @property
    def penalized(self) -> bool:
        return (self.repeat_penalty != 1.0 or self.frequency_penalty != 0.0
                or self.presence_penalty != 0.0)


class Native:
    """One loaded GGUF. ``generate=False``: the tokenizer only (no weights, no context)."""

    def __init__(self, path: Path, *, slots: int, context_length: int, chunk: int,
                 threads: int, generate: bool) -> None:
        lc.llama_log_set(_log_callback, ctypes.c_void_p(0))
        lc.llama_backend_init()
        mparams = lc.llama_model_default_params()
        # llama.cpp's repacked (AMX) weight buffers crash on the first decode on these CPUs.
        mparams.use_extra_bufts = False
        mparams.vocab_only = not generate
        self.model = lc.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model:
            raise EngineError(f"llama.cpp could not load {path}")
        self.ctx: Any = None
        self.memory: Any = None
        self.batch: Any = None
        self.capacity = 0
        self.vocab = lc.llama_model_get_vocab(self.model)
        if generate:
            try:
                self._context(path, slots, context_length, chunk, threads)
            except BaseException:  # (too little memory for the KV cache): nothing kept
                self.close()
                raise
        self.add_bos = bool(lc.llama_vocab_get_add_bos(self.vocab))

    @functools.cached_property
    def longest_piece(self) -> int:
        """Bytes of the longest token's text (read once, when first asked: a model loaded
        only to generate never is)."""
        return max(len(self.piece_bytes(token))
                   for token in range(lc.llama_vocab_n_tokens(self.vocab)))

    def _context(self, path: Path, slots: int, context_length: int, chunk: int,
                 threads: int) -> None:
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = context_length * slots
        cparams.n_seq_max = slots
        cparams.n_batch = max(chunk + slots, 512)
        cparams.n_ubatch = cparams.n_batch
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        # One KV pool shared by the slots, with flash attention: measured faster here for
        # batched decoding than a separate cache per slot (bench/serving.py). It also lets a
        # slot share another's prompt prefix (llama_memory_seq_cp) instead of recomputing it.
        cparams.kv_unified = True
        cparams.flash_attn_type = 1
        # Sliding-window layers keep their whole context, so that a kept prefix stays valid.
        cparams.swa_full = True
        ctx = lc.llama_init_from_model(self.model, cparams)
        if not ctx:
            raise EngineError(f"llama.cpp could not create a context for {path}")
        self.ctx = ctx
        self.memory = lc.llama_get_memory(ctx)
        self.batch = lc.llama_batch_init(cparams.n_batch, 0, 1)
        self.capacity = cparams.n_batch

    def kv_bytes(self, tokens: int) -> int:
        """About what a KV cache of ``tokens`` positions holds: f16 keys and values in every
        layer, from the GGUF's metadata (0 where it does not say)."""
        arch = self.meta("general.architecture")

        def number(key: str) -> int:
            value = self.meta(f"{arch}.{key}")
            return int(value) if value and value.isdigit() else 0

        layers, embd, heads = (number("block_count"), number("embedding_length"),
                               number("attention.head_count"))
        if not (arch and layers and embd and heads):
            return 0
        kv_heads = number("attention.head_count_kv") or heads
        key = number("attention.key_length") or embd // heads
        value = number("attention.value_length") or key
        return layers * tokens * kv_heads * (key + value) * 2

    def close(self) -> None:
        if self.batch is not None:
            lc.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx is not None:
            lc.llama_free(self.ctx)
            self.ctx = None
        if self.model is not None:
            lc.llama_model_free(self.model)
            self.model = None

    # -- tokens ------------------------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        size = 1 << 16
        buf = ctypes.create_string_buffer(size)
        n = lc.llama_model_meta_val_str(self.model, key.encode(), buf, size)
        if n < 0:
            return None
        if n >= size:
            buf = ctypes.create_string_buffer(n + 1)
            lc.llama_model_meta_val_str(self.model, key.encode(), buf, n + 1)
        return buf.value.decode("utf-8", errors="replace")

    def tokenize(self, text: str, special: bool = True, bos: bool = True) -> list[int]:
        """``special``: control tokens written in ``text`` are parsed as such (the chat
        format's own text only). ``bos``: start with the model's BOS if it wants one."""
        data = text.encode()
        add_bos = self.add_bos and bos
        bos_text = self.piece(lc.llama_vocab_bos(self.vocab), True) if add_bos else ""
        if bos_text and special and text.startswith(bos_text):
            add_bos = False  # the template wrote it already
        n_max = len(data) + 16
        tokens = (lc.llama_token * n_max)()
        n = lc.llama_tokenize(self.vocab, data, len(data), tokens, n_max, add_bos, special)
        if n < 0:
            n_max = -n
            tokens = (lc.llama_token * n_max)()
            n = lc.llama_tokenize(self.vocab, data, len(data), tokens, n_max, add_bos, special)
        return list(tokens[:n])

    def piece_bytes(self, token: int, special: bool = False) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = lc.llama_token_to_piece(self.vocab, token, buf, 64, 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token, buf, -n, 0, special)
        return buf.raw[:n]

    def piece(self, token: int, special: bool = False) -> str:
        if token < 0:
            return ""
        return self.piece_bytes(token, special).decode("utf-8", errors="replace")

    def bos_piece(self) -> str:
        return self.piece(lc.llama_vocab_bos(self.vocab), True)

    def eos_piece(self) -> str:
        return self.piece(lc.llama_vocab_eos(self.vocab), True)


class LlamaBackend:
    """The scheduler's view of llama.cpp: decode a batch under the process's compute lock,
    sample with per-sequence sampler chains, and keep or share slots' KV."""

    def __init__(self, native: Native, compute_lock: threading.Lock,
                 seed: int | None = None) -> None:
        self._native = native
        self._lock = compute_lock
        self._seed = seed
        self._vocab_size = lc.llama_vocab_n_tokens(native.vocab)

    def decode(self, entries: list[Entry]) -> None:
        batch = self._native.batch
        for n, entry in enumerate(entries):
            batch.token[n] = entry.token
            batch.pos[n] = entry.pos
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = entry.slot
            batch.logits[n] = entry.logits
        batch.n_tokens = len(entries)
        with self._lock:
            status = lc.llama_decode(self._native.ctx, batch)
        if status != 0:
            raise EngineError(f"llama_decode returned {status}")

    def sample(self, seq: Sequence, index: int) -> int:
        if seq.state is None:  # greedy: the first largest logit, read in place
            logits = lc.llama_get_logits_ith(self._native.ctx, index)
            return int(np.ctypeslib.as_array(logits, shape=(self._vocab_size,)).argmax())
        return int(lc.llama_sampler_sample(seq.state, self._native.ctx, index))

    def is_end(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self._native.vocab, token))

    def piece(self, token: int) -> bytes:
        return self._native.piece_bytes(token)

    def keep(self, slot: int, n: int) -> bool:
        memory = self._native.memory
        if not lc.llama_memory_seq_rm(memory, slot, n, -1):
            return False
        # a cache that dropped the start of the slot cannot continue it
        return n == 0 or lc.llama_memory_seq_pos_min(memory, slot) <= 0

    def copy(self, src: int, dst: int, n: int) -> None:
        lc.llama_memory_seq_cp(self._native.memory, src, dst, 0, n)

    def start(self, seq: Sequence) -> None:
        draw: Draw = seq.options
        greedy = draw.temperature <= 0 and not (
            draw.frequency_penalty or draw.presence_penalty or draw.grammar)
        seq.state = None if greedy else self.sampler(draw)

    def stop(self, seq: Sequence) -> None:
        if seq.state is not None:
            lc.llama_sampler_free(seq.state)
            seq.state = None

    def sampler(self, draw: Draw) -> Any:
        """The chain of a sampled (temperature > 0) sequence: top-k first, before anything
        that scans or sorts the vocabulary (a full sort of a 262k-token vocabulary per
        sequence per step is slow), then the penalties (repeat, and OpenAI's frequency and
        presence), top-p, min-p, temperature. A grammar goes before all: it decides which
        tokens may come at all. At temperature 0: the grammar and the penalties, then the
        largest."""
        chain = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        if draw.grammar is not None and draw.trigger is not None:
            patterns = (ctypes.c_char_p * 1)(draw.trigger.encode())
            constrained = lc.llama_sampler_init_grammar_lazy_patterns(
                self._native.vocab, draw.grammar.encode(), b"root", patterns, 1, None, 0)
        elif draw.grammar is not None:
            constrained = lc.llama_sampler_init_grammar(self._native.vocab,
                                                        draw.grammar.encode(), b"root")
        if draw.grammar is not None:
            if not constrained:
                lc.llama_sampler_free(chain)
                raise EngineError("llama.cpp could not read the structured output's grammar")
            lc.llama_sampler_chain_add(chain, constrained)
        openai = bool(draw.frequency_penalty or draw.presence_penalty)
        # (greedy answers take no repeat penalty: only OpenAI's penalties, when asked for)
        penalized = openai if draw.temperature <= 0 else draw.penalized
        penalties = lc.llama_sampler_init_penalties(
            lc.llama_vocab_n_tokens(self._native.vocab),
            draw.window if openai else PENALTY_WINDOW, draw.repeat_penalty,
            draw.frequency_penalty, draw.presence_penalty) if penalized else None
        if draw.temperature <= 0:
            if penalties is not None:
                lc.llama_sampler_chain_add(chain, penalties)
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_greedy())
            return chain
        if draw.top_k > 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_k(draw.top_k))
        if penalties is not None:
            lc.llama_sampler_chain_add(chain, penalties)
        if draw.top_p < 1.0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_top_p(draw.top_p, 1))
        if draw.min_p > 0:
            lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_min_p(draw.min_p, 1))
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_temp(draw.temperature))
        seed = draw.seed if draw.seed is not None else self._seed
        if seed is None:
            seed = random.getrandbits(32)
        lc.llama_sampler_chain_add(chain, lc.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain
