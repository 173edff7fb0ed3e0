"""Backend choice and the converted-graph cache (issue 22), without any graph runtime: the
cache is plain files, so its safety is tested with a stand-in converter."""

from __future__ import annotations

import json

import pytest

from dtpm_core import backends
from dtpm_core.backends import resolve_backend
from dtpm_core.backends.graph_cache import MANIFEST, GraphCache, default_cache_root
from dtpm_core.errors import ConfigError

CPU, CUDA = "cpu", "cuda"
KEY = {"role": "denoiser", "base_sha256": "ab" * 32, "runtime": "openvino 1"}


def test_auto_is_openvino_where_measured_faster_and_choices_that_cannot_run_are_errors(
        monkeypatch):
    monkeypatch.setattr(backends, "openvino_installed", lambda: True)
    assert resolve_backend("auto", CPU, machine="x86_64") == "openvino"
    assert resolve_backend("auto", CPU, machine="AMD64") == "openvino"  # Windows' name
    assert resolve_backend("auto", CPU, machine="arm64") == "torch"  # never measured there
    assert resolve_backend("auto", CUDA, machine="x86_64") == "torch"
    assert resolve_backend("openvino", CPU, machine="arm64") == "openvino"
    assert resolve_backend("torch", CPU) == "torch"
    with pytest.raises(ConfigError, match="runs on the CPU"):
        resolve_backend("openvino", CUDA)
    monkeypatch.setattr(backends, "openvino_installed", lambda: False)
    assert resolve_backend("auto", CPU) == "torch"
    with pytest.raises(ConfigError, match="pip install openvino"):
        resolve_backend("openvino", CPU)
    with pytest.raises(ConfigError, match="unknown backend"):
        resolve_backend("onnx", CPU)


def test_without_torch_auto_is_openvino_and_torch_is_refused(monkeypatch):
    """The CPU bundle leaves torch out: "auto" runs OpenVINO there, "torch" says why not."""
    monkeypatch.setattr(backends, "openvino_installed", lambda: True)
    monkeypatch.setattr(backends, "torch_installed", lambda: False)
    assert resolve_backend("auto", "auto") == "openvino"
    with pytest.raises(ConfigError, match="leaves out"):
        resolve_backend("torch", CPU)
    with pytest.raises(ConfigError, match="leaves out"):
        resolve_backend("auto", CUDA)
    monkeypatch.setattr(backends, "openvino_installed", lambda: False)
    with pytest.raises(ConfigError, match="leaves out"):
        resolve_backend("auto", CPU)


def test_the_cache_folder_is_the_user_cache_unless_the_environment_says(monkeypatch, tmp_path):
    monkeypatch.setenv("DTPM_GRAPH_CACHE", str(tmp_path))
    assert default_cache_root() == tmp_path
    monkeypatch.delenv("DTPM_GRAPH_CACHE")
    root = default_cache_root()
    assert root.name == "openvino" and "DTPM Studio" in str(root)


class Converter:
    """Writes a stand-in graph (an .xml and a 4 kB .bin) and counts the conversions."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, folder) -> None:
        self.calls += 1
        (folder / "model.xml").write_text("<net/>")
        (folder / "model.bin").write_bytes(bytes(range(256)) * 16)


def test_a_graph_is_converted_once_then_read_from_the_cache(tmp_path):
    convert = Converter()
    first = GraphCache(tmp_path).get(KEY, convert)
    assert first.converted and first.problem == "" and convert.calls == 1
    again = GraphCache(tmp_path).get(KEY, convert)  # another process, the same entry
    assert not again.converted and again.folder == first.folder and convert.calls == 1
    assert sorted(p.name for p in first.folder.iterdir()) == [MANIFEST, "model.bin",
                                                              "model.xml"]
    assert [p.name for p in tmp_path.iterdir()] == [first.folder.name]  # no temporary left
    other = GraphCache(tmp_path).get({**KEY, "runtime": "openvino 2"}, convert)
    assert other.converted and other.folder != first.folder and convert.calls == 2


@pytest.mark.parametrize("damage, reported", [
    (lambda f: (f / "model.bin").write_bytes((f / "model.bin").read_bytes()[:1000]),
     "truncated"),
    (lambda f: (f / "model.bin").write_bytes(b"\0" * 4096), "does not match its sha256"),
    (lambda f: (f / "model.xml").unlink(), "missing"),
    (lambda f: (f / MANIFEST).write_text("{"), "unreadable manifest"),
    (lambda f: (f / MANIFEST).unlink(), "no manifest"),
    (lambda f: (f / MANIFEST).write_text(json.dumps(
        {**json.loads((f / MANIFEST).read_text()), "key": {**KEY, "base_sha256": "cd"}})),
     "stale"),
])
def test_a_damaged_or_stale_entry_is_reported_and_rebuilt_never_used(tmp_path, damage,
                                                                      reported):
    convert = Converter()
    cache = GraphCache(tmp_path)
    folder = cache.get(KEY, convert).folder
    damage(folder)
    rebuilt = cache.get(KEY, convert)
    assert rebuilt.converted and reported in rebuilt.problem and convert.calls == 2
    assert (rebuilt.folder / "model.bin").read_bytes() == bytes(range(256)) * 16
    assert not cache.get(KEY, convert).converted  # whole again
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_a_conversion_that_fails_leaves_no_entry(tmp_path):
    def broken(folder) -> None:
        (folder / "model.xml").write_text("<net")
        raise RuntimeError("conversion failed")

    cache = GraphCache(tmp_path)
    with pytest.raises(RuntimeError, match="conversion failed"):
        cache.get(KEY, broken)
    assert list(tmp_path.iterdir()) == []
    assert cache.get(KEY, Converter()).converted


def test_a_key_with_tuples_finds_its_entry_again(tmp_path):
    convert = Converter()
    key = {**KEY, "enc_blocks": (1, 1, 1, 1)}  # configs hold tuples; the manifest JSON lists
    assert GraphCache(tmp_path).get(key, convert).converted
    assert not GraphCache(tmp_path).get(key, convert).converted and convert.calls == 1


def test_a_spec_without_a_backend_takes_the_process_preference(monkeypatch):
    from dtpm_core.backends import backend_preference, set_backend_preference
    from dtpm_core.engines.engine import DTPMSpec, SinglePassSpec

    assert DTPMSpec("b.safetensors").backend is None
    assert SinglePassSpec("s.safetensors").backend is None
    monkeypatch.setattr(backends, "openvino_installed", lambda: True)
    before = backend_preference()
    try:
        set_backend_preference("openvino")
        assert resolve_backend(None, CPU, machine="arm64") == "openvino"
        set_backend_preference("torch")
        assert resolve_backend(None, CPU, machine="x86_64") == "torch"
        with pytest.raises(ConfigError, match="unknown backend"):
            set_backend_preference("onnx")
    finally:
        set_backend_preference(before)
