"""Atomic writes: whole file or nothing, old content kept on failure."""

import os
import stat

import pytest

from dtpm_core.files.atomic import atomic_writer, write_bytes_atomic, write_text_atomic


def test_write_replaces_the_target_and_creates_folders(tmp_path):
    target = tmp_path / "a" / "b" / "file.bin"
    write_bytes_atomic(target, b"one")
    write_bytes_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    write_text_atomic(tmp_path / "t.json", "{}")
    assert (tmp_path / "t.json").read_text() == "{}"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_failure_keeps_the_old_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_writer(target, "w", encoding="utf-8") as handle:
        handle.write("half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_writer_exposes_a_named_file(tmp_path):
    with atomic_writer(tmp_path / "x.tif") as handle:
        assert isinstance(handle.name, str) and handle.name.endswith(".partial")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_new_files_get_the_usual_permissions_not_private_ones(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = write_bytes_atomic(tmp_path / "restored.png", b"x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_replacing_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{}")
    path.chmod(0o640)
    write_text_atomic(path, '{"k": 1}')
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_text() == '{"k": 1}'


def test_no_replace_keeps_a_file_that_appeared_meanwhile(tmp_path):
    target = tmp_path / "result.png"
    target.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError), atomic_writer(target, replace=False) as handle:
        handle.write(b"ours")
    assert target.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["result.png"]
    write_bytes_atomic(tmp_path / "new.png", b"ours", replace=False)
    assert (tmp_path / "new.png").read_bytes() == b"ours"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.png", "result.png"]
