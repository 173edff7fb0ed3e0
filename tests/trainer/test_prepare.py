"""`prepare`: patch grid, RTV-smoothed twins (16 bit), index.json, resume after a kill,
unreadable sources, settings guard, and `PreparedPatches` reading the result back."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from dtpm_core.diffusion.smoothing import RTVConfig, rtv_smooth
from dtpm_core.errors import ConfigError
from trainer.data import DataError, PreparedPatches, read_index
from trainer.prepare import _grid, prepare

PATCH = 64


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """RTV on 64x64 patches gains nothing from threads, and loses a lot on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Two photos (128x128 -> 4 patches, 100x150 -> 2), one too small, one corrupt file."""
    from skimage import data

    folder = tmp_path_factory.mktemp("sources")
    Image.fromarray(data.astronaut()).resize((128, 128), Image.Resampling.LANCZOS).save(
        folder / "astronaut.png")
    (folder / "nested").mkdir()
    Image.fromarray(data.coffee()).resize((150, 100), Image.Resampling.LANCZOS).save(
        folder / "nested" / "coffee.jpg", quality=95)
    Image.fromarray(data.chelsea()).resize((60, 50)).save(folder / "small.png")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    return folder


@pytest.fixture(scope="module")
def prepared(sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "out"
    report = prepare([sources], out, patch=PATCH, progress=False)
    return out, report


def _copy(prepared, tmp_path: Path) -> Path:
    return Path(shutil.copytree(prepared[0], tmp_path / "copy"))


def _patch_files(out: Path, kind: str) -> list[str]:
    return sorted(p.name for p in (out / kind).iterdir())


EXPECTED = sorted([f"astronaut_{y}_{x}.png" for y in (0, 64) for x in (0, 64)]
                  + [f"coffee_0_{x}.png" for x in (0, 64)])


def test_patches_counts_and_report(prepared, sources):
    out, report = prepared
    assert _patch_files(out, "clean") == _patch_files(out, "smooth") == EXPECTED
    assert (report.patches_written, report.patches_skipped, report.patches_total) == (6, 0, 6)
    assert report.sources_used == 2 and report.too_small == (sources / "small.png",)
    assert [p.name for p, _ in report.failed] == ["corrupt.png"]
    assert "corrupt.png" in report.failed[0][1] and report.seconds > 0
    assert "6 patches" in report.summary() and "corrupt.png" in report.summary()
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files


def test_smooth_is_the_rtv_of_the_stored_clean_patch(prepared, sources):
    out, _ = prepared
    name = "astronaut_64_0.png"
    clean = cv2.imread(str(out / "clean" / name), cv2.IMREAD_UNCHANGED)
    smooth = cv2.imread(str(out / "smooth" / name), cv2.IMREAD_UNCHANGED)
    assert clean.dtype == np.uint8 and smooth.dtype == np.uint16
    assert clean.shape == smooth.shape == (PATCH, PATCH, 3)
    x_g = cv2.cvtColor(clean, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    y_s = cv2.cvtColor(smooth, cv2.COLOR_BGR2RGB).astype(np.float32) / 65535
    # the clean patch is the source region at (y=64, x=0)
    source = np.asarray(Image.open(sources / "astronaut.png").convert("RGB"))
    np.testing.assert_array_equal(cv2.cvtColor(clean, cv2.COLOR_BGR2RGB), source[64:128, 0:64])
    expected = rtv_smooth(torch.from_numpy(x_g).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(y_s, expected, atol=2 / 65535)

    def variation(a: np.ndarray) -> float:
        return float(np.abs(np.diff(a, axis=0)).mean() + np.abs(np.diff(a, axis=1)).mean())

    assert np.abs(y_s - x_g).mean() > 0.005
    assert variation(y_s) < 0.6 * variation(x_g)


def test_smooth_of_a_16_bit_source_is_taken_from_the_stored_8_bit_patch(tmp_path):
    from dtpm_core.files.imageio import write_image

    ramp = np.linspace(0.0, 1.0, PATCH * PATCH * 3, dtype=np.float32).reshape(PATCH, PATCH, 3)
    write_image(tmp_path / "deep.png", np.sin(40 * ramp) * 0.4 + 0.5, bit_depth=16)
    prepare([tmp_path / "deep.png"], tmp_path / "out", patch=PATCH, progress=False)
    clean = cv2.imread(str(tmp_path / "out" / "clean" / "deep_0_0.png"), cv2.IMREAD_UNCHANGED)
    smooth = cv2.imread(str(tmp_path / "out" / "smooth" / "deep_0_0.png"), cv2.IMREAD_UNCHANGED)
    x_g = torch.from_numpy(clean[..., ::-1].astype(np.float32) / 255).permute(2, 0, 1)
    expected = rtv_smooth(x_g).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(smooth[..., ::-1] / 65535, expected, atol=2 / 65535)


def test_index_json(prepared, sources):
    out, _ = prepared
    index = json.loads((out / "index.json").read_text())
    assert index["complete"] is True
    assert index["settings"]["patch"] == PATCH and index["settings"]["stride"] == PATCH
    assert index["settings"]["rtv"] == dataclasses.asdict(RTVConfig())
    assert index["settings"]["smooth_bit_depth"] == 16
    assert sorted(p["name"] + ".png" for p in index["patches"]) == EXPECTED
    coffee = [p for p in index["patches"] if p["name"].startswith("coffee")]
    assert [(p["y"], p["x"]) for p in coffee] == [(0, 0), (0, 64)]
    assert Path(coffee[0]["source"]) == sources / "nested" / "coffee.jpg"
    assert index["too_small"] == [str(sources / "small.png")]
    assert [Path(f["source"]).name for f in index["failed"]] == ["corrupt.png"]
    assert read_index(out).sources == sorted({p["source"] for p in index["patches"]})


def test_rerun_skips_everything(prepared, sources, tmp_path):
    out = _copy(prepared, tmp_path)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    report = prepare([sources], out, patch=PATCH, progress=False)
    assert (report.patches_written, report.patches_skipped, report.patches_total) == (0, 6, 6)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps


def test_resume_completes_a_partial_output(prepared, sources, tmp_path):
    out = _copy(prepared, tmp_path)
    original = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")}
    (out / "smooth" / "astronaut_0_64.png").unlink()
    (out / "smooth" / "coffee_0_0.png").unlink()
    (out / "clean" / "coffee_0_0.png").unlink()
    (out / "index.json").unlink()  # killed before the index was ever written
    report = prepare([sources], out, patch=PATCH, progress=False)
    assert (report.patches_written, report.patches_skipped) == (2, 4)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")} == original
    assert len(read_index(out).patches) == 6


def test_a_killed_run_leaves_a_usable_index_and_resumes(sources, tmp_path, monkeypatch):
    from trainer import prepare as prep

    calls = []
    real_write = prep.write_image

    def dying_write(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 5:  # the clean file of the third patch
            raise KeyboardInterrupt
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(prep, "write_image", dying_write)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        prepare([sources], out, patch=PATCH, progress=False)
    index = json.loads((out / "index.json").read_text())
    assert index["complete"] is False and len(index["patches"]) == 3
    with pytest.warns(UserWarning, match="not finished"):
        PreparedPatches(out, crop=None)
    monkeypatch.setattr(prep, "write_image", real_write)
    report = prepare([sources], out, patch=PATCH, progress=False)
    assert (report.patches_written, report.patches_skipped) == (4, 2)
    assert read_index(out).complete and _patch_files(out, "smooth") == EXPECTED


def test_same_stems_get_distinct_names_and_output_inside_a_source_is_ignored(tmp_path):
    for folder in ("a", "b"):
        Image.new("RGB", (PATCH, PATCH), (30, 90, 200)).save(_mkdir(tmp_path / folder) / "x.png")
    out = tmp_path / "a" / "prepared"
    first = prepare([tmp_path], out, patch=PATCH, progress=False)
    names = _patch_files(out, "clean")
    assert first.patches_written == 2 and len(set(names)) == 2
    assert all(n.startswith("x-") and n.endswith("_0_0.png") for n in names)
    again = prepare([tmp_path], out, patch=PATCH, progress=False)  # its own patches not sources
    assert (again.patches_written, again.patches_skipped, again.sources_used) == (0, 2, 2)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_limit_and_other_settings(prepared, sources, tmp_path):
    report = prepare([sources / "astronaut.png"], tmp_path / "few", patch=PATCH, limit=3,
                     progress=False)
    assert report.patches_total == report.patches_written == 3
    assert len(list((tmp_path / "few" / "clean").iterdir())) == 3
    out = _copy(prepared, tmp_path)
    with pytest.raises(DataError, match="other settings.*stride: 64 before, 32 now"):
        prepare([sources], out, patch=PATCH, stride=32, progress=False)
    with pytest.raises(ConfigError, match="min_side"):
        prepare([sources], tmp_path / "x", patch=PATCH, min_side=32)
    (tmp_path / "no_images").mkdir()
    with pytest.raises(DataError, match="no images found"):
        prepare([tmp_path / "no_images"], tmp_path / "y", patch=PATCH)
    assert _grid(100, 150, 64, 64) == [(0, 0), (0, 64)]
    assert _grid(128, 128, 64, 32) == [(y, x) for y in (0, 32, 64) for x in (0, 32, 64)]


def test_prepared_patches_read_back(prepared):
    out, _ = prepared
    whole = PreparedPatches(out, crop=None, augment=False)
    assert len(whole) == 6
    names = [p["name"] for p in whole.patches]
    item = whole[names.index("coffee_0_64")]
    clean = cv2.cvtColor(cv2.imread(str(out / "clean" / "coffee_0_64.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_allclose(item["clean"].permute(1, 2, 0).numpy(), clean / 255, atol=1e-6)
    assert item["smooth"].shape == (3, PATCH, PATCH)

    ds = PreparedPatches(out, crop=32, seed=5)
    first = ds[2]
    assert first["clean"].shape == first["smooth"].shape == (3, 32, 32)
    assert first["clean"].dtype == torch.float32
    assert (PreparedPatches(out, crop=32, seed=5)[2]["smooth"] == first["smooth"]).all()
    ds.set_epoch(3)
    assert not (ds[2]["clean"] == first["clean"]).all()
    # the crop and the flip/rotation are the same for x_g and y_s: y_s is the RTV of x_g
    full = whole[2]
    for seed in range(4):
        crop = PreparedPatches(out, crop=32, seed=seed)[2]
        hits = [(y, x, k, f) for y in range(33) for x in range(33) for k in range(4)
                for f in (False, True)
                if torch.equal(_transform(full["clean"][:, y:y + 32, x:x + 32], k, f),
                               crop["clean"])]
        assert hits
        assert any(torch.equal(_transform(full["smooth"][:, y:y + 32, x:x + 32], k, f),
                               crop["smooth"]) for y, x, k, f in hits)

    train = PreparedPatches(out, crop=32, split="train", held_out_fraction=0.5)
    held = PreparedPatches(out, crop=32, split="held-out", held_out_fraction=0.5)
    assert len(train) + len(held) == 6 and len(train) > 0 and len(held) > 0
    assert {p["source"] for p in train.patches}.isdisjoint(p["source"] for p in held.patches)
    assert len(PreparedPatches(out, split="held-out", crop=32)) == 0
    only = PreparedPatches(out, crop=32, sources=["astronaut.png"])
    assert len(only) == 4
    with pytest.raises(ConfigError, match="larger than the prepared patches"):
        PreparedPatches(out, crop=PATCH + 1)


def _transform(chw: torch.Tensor, turns: int, flip: bool) -> torch.Tensor:
    """The `augment` transform on a (C, H, W) tensor: horizontal flip, then rot90."""
    out = torch.flip(chw, dims=[2]) if flip else chw
    return torch.rot90(out, turns, dims=(1, 2))


def test_missing_patch_file_is_a_clear_error(prepared, tmp_path):
    out = _copy(prepared, tmp_path)
    (out / "smooth" / "astronaut_0_0.png").unlink()
    ds = PreparedPatches(out, crop=None, augment=False)
    index = [p["name"] for p in ds.patches].index("astronaut_0_0")
    with pytest.raises(DataError, match="astronaut_0_0.png.*prepare"):
        ds[index]
