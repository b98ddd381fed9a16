"""``python -m llama_cpp.server`` with llama.cpp's extra (repacked) weight buffers turned off,
as Stratus loads models: on CPUs with AMX those buffers crash the first decode."""

from __future__ import annotations

import llama_cpp
import llama_cpp.llama

_default_params = llama_cpp.llama_model_default_params


def _params():
    params = _default_params()
    params.use_extra_bufts = False
    return params


llama_cpp.llama_model_default_params = _params
llama_cpp.llama.llama_cpp.llama_model_default_params = _params

if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    main()
