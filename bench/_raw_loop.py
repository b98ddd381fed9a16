"""The ceiling: C sequences decoded together with one llama_decode per step, no server.

Prints one JSON line per concurrency level with the same samples the HTTP benchmarks record.
"""

from __future__ import annotations

import argparse
import json
import time

import llama_cpp as lc
from _prompts import PROMPTS


def tokenize(vocab, text: str) -> list[int]:
    data = text.encode()
    buf = (lc.llama_token * (len(data) + 16))()
    n = lc.llama_tokenize(vocab, data, len(data), buf, len(data) + 16, True, True)
    return list(buf[:n])


def run(model, vocab, args, concurrency: int) -> dict:
    cparams = lc.llama_context_default_params()
    cparams.n_ctx = 1024 * concurrency
    cparams.n_seq_max = concurrency
    cparams.n_batch = cparams.n_ubatch = 2048
    cparams.n_threads = cparams.n_threads_batch = args.threads
    cparams.kv_unified = True  # as the Stratus engine: one KV pool, flash attention
    cparams.flash_attn_type = 1
    ctx = lc.llama_init_from_model(model, cparams)
    memory = lc.llama_get_memory(ctx)
    batch = lc.llama_batch_init(2048, 0, 1)
    sampler = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
    lc.llama_sampler_chain_add(sampler, lc.llama_sampler_init_greedy())
    samples = []
    started = time.perf_counter()
    for r in range(args.requests_per_client):
        prompts = [tokenize(vocab, "<start_of_turn>user\n" + PROMPTS[(i + r) % len(PROMPTS)]
                            + "<end_of_turn>\n<start_of_turn>model\n")
                   for i in range(concurrency)]
        t0 = time.perf_counter()
        batch.n_tokens = 0
        last = []
        for s, toks in enumerate(prompts):
            for p, tok in enumerate(toks):
                i = batch.n_tokens
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, p, 1
                batch.seq_id[i][0] = s
                batch.logits[i] = p == len(toks) - 1
                batch.n_tokens += 1
            last.append(batch.n_tokens - 1)
        lc.llama_decode(ctx, batch)
        ttft = time.perf_counter() - t0
        live = {s: (last[s], len(prompts[s])) for s in range(concurrency)}
        produced = [0] * concurrency
        ended = [0.0] * concurrency
        while live:
            nxt = {}
            for s, (idx, pos) in live.items():
                tok = lc.llama_sampler_sample(sampler, ctx, idx)
                if lc.llama_vocab_is_eog(vocab, tok) or produced[s] == args.max_tokens:
                    ended[s] = time.perf_counter() - t0
                    continue
                produced[s] += 1
                nxt[s] = (tok, pos)
            if not nxt:
                break
            batch.n_tokens = 0
            live = {}
            for s, (tok, pos) in nxt.items():
                i = batch.n_tokens
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, pos, 1
                batch.seq_id[i][0] = s
                batch.logits[i] = True
                batch.n_tokens += 1
                live[s] = (i, pos + 1)
            lc.llama_decode(ctx, batch)
        for s in range(concurrency):
            samples.append({"latency": ended[s], "ttft": ttft, "output_tokens": produced[s]})
            lc.llama_memory_seq_rm(memory, s, -1, -1)
    duration = time.perf_counter() - started
    lc.llama_sampler_free(sampler)
    lc.llama_batch_free(batch)
    lc.llama_free(ctx)
    return {"concurrency": concurrency, "duration": duration, "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("gguf")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--requests-per-client", type=int, default=4)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    args = parser.parse_args()
    lc.llama_backend_init()
    params = lc.llama_model_default_params()
    params.use_extra_bufts = False
    model = lc.llama_model_load_from_file(args.gguf.encode(), params)
    vocab = lc.llama_model_get_vocab(model)
    for c in args.concurrency:
        print(json.dumps(run(model, vocab, args, c)), flush=True)


if __name__ == "__main__":
    main()
