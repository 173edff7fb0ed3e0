"""The folder of OpenVINO's compiled-model cache: created beside the converted graphs,
trimmed oldest first to its size limit, and left out (compiled afresh) where it cannot be
made. Plain files: no runtime needed."""

from __future__ import annotations

import os

from dtpm_core.backends.compiled_cache import COMPILED_FOLDER, compiled_cache_folder, trim


def _blob(folder, name: str, size: int, age_s: float) -> None:
    path = folder / name
    path.write_bytes(b"x" * size)
    stamp = 1_700_000_000 - age_s
    os.utime(path, (stamp, stamp))


def test_trim_removes_the_oldest_blobs_until_the_rest_fit(tmp_path):
    _blob(tmp_path, "old.blob", 400, age_s=300)
    _blob(tmp_path, "middle.blob", 400, age_s=200)
    _blob(tmp_path, "new.blob", 400, age_s=100)
    removed = trim(tmp_path, limit=900)
    assert [p.name for p in removed] == ["old.blob"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["middle.blob", "new.blob"]
    assert trim(tmp_path, limit=800) == []  # within the limit: nothing goes


def test_a_folder_within_its_limit_is_left_whole(tmp_path):
    _blob(tmp_path, "a.blob", 10, age_s=2)
    (tmp_path / "sub").mkdir()  # not OpenVINO's: never touched
    assert trim(tmp_path, limit=10) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.blob", "sub"]


def test_the_folder_is_made_under_the_graph_cache_and_trimmed(tmp_path):
    folder = compiled_cache_folder(tmp_path / "cache", limit=5)
    assert folder == tmp_path / "cache" / COMPILED_FOLDER and folder.is_dir()
    _blob(folder, "big.blob", 6, age_s=1)
    assert compiled_cache_folder(tmp_path / "cache", limit=5) == folder
    assert list(folder.iterdir()) == []


def test_a_cache_that_cannot_be_made_means_compiling_afresh(tmp_path):
    (tmp_path / "cache").write_text("a file where the folder should be")
    assert compiled_cache_folder(tmp_path / "cache") is None


def test_the_compiled_folder_is_not_a_converted_graph(tmp_path):
    from dtpm_core.backends.graph_cache import GraphCache

    compiled_cache_folder(tmp_path)
    (tmp_path / ("ab" * 16)).mkdir()  # a converted graph's folder (32 hex digits)
    assert GraphCache(tmp_path).entries() == [tmp_path / ("ab" * 16)]
    assert GraphCache(tmp_path / "none").entries() == []
