"""llama.cpp's own C++ ``llama-server``, built once from the llama.cpp vendored in the
llama-cpp-python sdist of the installed version (so both run the same llama.cpp), cached
outside the repository, and started with the settings Stratus uses.

    .venv/bin/python bench/_cpp_server.py        # build (or find) it and print its path
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tarfile
from pathlib import Path

CACHE = Path(os.environ.get("STRATUS_BENCH_CACHE",
                            Path.home() / ".cache" / "stratus-bench"))


def binary() -> Path:
    """The ``llama-server`` of the installed llama-cpp-python's llama.cpp, built if needed."""
    version = importlib.metadata.version("llama-cpp-python")
    root = CACHE / f"llama.cpp-{version}"
    built = root / "build" / "bin" / "llama-server"
    if built.is_file():
        return built
    root.mkdir(parents=True, exist_ok=True)
    sdist = root / "sdist"
    if not sdist.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:",
                        "--no-deps", "-d", str(root / "download"),
                        f"llama-cpp-python=={version}"], check=True)
        (archive,) = (root / "download").glob("llama_cpp_python-*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(sdist, filter="data")
    (source,) = sdist.glob("llama_cpp_python-*/vendor/llama.cpp")
    print(f"building llama-server from {source} (once; several minutes)", file=sys.stderr)
    subprocess.run(["cmake", "-S", str(source), "-B", str(root / "build"),
                    "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF",
                    "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON"], check=True)
    subprocess.run(["cmake", "--build", str(root / "build"), "--target", "llama-server",
                    "-j", str(os.cpu_count() or 2)], check=True)
    return built


def command(gguf: Path, port: int, *, slots: int, threads: int, context: int) -> list[str]:
    """llama-server as Stratus runs llama.cpp: ``slots`` parallel sequences over one KV pool
    (``--kv-unified``), the same threads, flash attention, repacked weights off, prompt
    cache on (its default)."""
    return [str(binary()), "-m", str(gguf), "--port", str(port), "--host", "127.0.0.1",
            "-np", str(slots), "-c", str(context * slots), "-t", str(threads), "-tb",
            str(threads), "-fa", "on", "--no-repack", "--kv-unified", "--swa-full",
            "--no-webui"]


if __name__ == "__main__":
    print(binary())
