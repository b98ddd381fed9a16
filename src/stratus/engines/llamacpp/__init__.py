"""llama.cpp in-process, with continuous batching and prompt reuse.

One engine thread owns one context with ``batch_slots`` sequence slots. Each step packs the
next token of every running sequence, plus a chunk of each waiting prompt, into a single
``llama_decode``; new requests join between steps and finished or cancelled ones leave, so a
long prompt never stalls running generations for more than a chunk. A slot keeps its KV
after its request ends, and a new request whose prompt starts the same way decodes only the
rest. Every model in the process decodes under one compute lock: two decodes at once on the
same cores run many times slower than one after the other.

- ``_native``: llama.cpp's handles (model, context, tokenizer, sampler chains);
- ``_scheduler``: the decisions (slots, batches, prompt reuse, endings), tested without a
  model;
- ``_engine``: the engine thread between the event loop and the scheduler;
- ``_tools``: tool calls in the model's own format, and the grammar that keeps them valid.
"""

from stratus.engines.llamacpp._engine import LlamaCppEngine, default_threads
from stratus.engines.llamacpp._native import EngineError
from stratus.engines.llamacpp._tools import call_grammar

__all__ = ["EngineError", "LlamaCppEngine", "call_grammar", "default_threads"]
