"""Training data: dataset layouts on tiny fake trees, folder matching and its errors, the
held-out split, aligned crops/augmentation and per-(seed, epoch, index) determinism."""

from __future__ import annotations

import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import trainer
from dtpm_core.errors import ConfigError
from dtpm_core.files.imageio import write_image
from trainer import data as td
from trainer import pairs as tp
from trainer.pairs import DataError, Pair, UnmatchedFilesWarning


def _touch(path: Path, size: tuple[int, int] = (6, 8), value: float | None = None) -> Path:
    """A tiny image file (random content unless `value`), parents created."""
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    rgb = np.full((*size, 3), value, np.float32) if value is not None else rng.random((*size, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_image(path, rgb.astype(np.float32))


def _names(pairs: list[Pair], root: Path) -> list[tuple[str, str]]:
    return [(p.degraded.relative_to(root).as_posix(), p.clean.relative_to(root).as_posix())
            for p in pairs]


def _sorted(pairs: list[Pair]) -> bool:
    return [p.degraded for p in pairs] == sorted(p.degraded for p in pairs)


# ----------------------------------------------------------------------------- folders


def test_folders_match_by_stem_any_extension_and_common_suffixes(tmp_path):
    for name in ("a.png", "b_rain.jpg", "c.png", "D_Blur.png"):
        _touch(tmp_path / "deg" / name)
    for name in ("a_gt.png", "b_clean.png", "c.jpg", "d_sharp.tif"):
        _touch(tmp_path / "clean" / name)
    pairs = tp.pairs_from_folders(tmp_path / "deg", tmp_path / "clean")
    assert _names(pairs, tmp_path) == [
        ("deg/D_Blur.png", "clean/d_sharp.tif"), ("deg/a.png", "clean/a_gt.png"),
        ("deg/b_rain.jpg", "clean/b_clean.png"), ("deg/c.png", "clean/c.jpg")]
    # without suffix stripping only the plain names pair up
    with pytest.warns(UnmatchedFilesWarning):
        plain = tp.pairs_from_folders(tmp_path / "deg", tmp_path / "clean", suffixes=())
    assert _names(plain, tmp_path) == [("deg/c.png", "clean/c.jpg")]


def test_unmatched_files_warn_with_examples_and_are_exposed(tmp_path):
    for name in ("a.png", "b.png", "orphan.png"):
        _touch(tmp_path / "deg" / name)
    for name in ("a.png", "b.png", "lonely.png"):
        _touch(tmp_path / "clean" / name)
    with pytest.warns(UnmatchedFilesWarning, match="orphan.png") as record:
        pairs = tp.pairs_from_folders(tmp_path / "deg", tmp_path / "clean")
    assert "lonely.png" in str(record[0].message) and "2 pairs matched" in str(record[0].message)
    assert len(pairs) == 2
    match = tp.match_folders(tmp_path / "deg", tmp_path / "clean")
    assert [p.name for p in match.unmatched_degraded] == ["orphan.png"]
    assert [p.name for p in match.unmatched_clean] == ["lonely.png"]


def test_nothing_matched_is_an_error_listing_examples(tmp_path):
    for name in ("a.png", "b.png"):
        _touch(tmp_path / "deg" / name)
    for name in ("x_target7.png", "y_target7.png"):
        _touch(tmp_path / "clean" / name)
    with pytest.raises(DataError) as info:
        tp.pairs_from_folders(tmp_path / "deg", tmp_path / "clean")
    text = str(info.value)
    assert "no pairs matched" in text and "'a.png'" in text
    assert "'x_target7.png'" in text and "'y_target7.png'" in text and "_gt" in text


def test_missing_or_empty_folders_and_ambiguous_names(tmp_path):
    _touch(tmp_path / "deg" / "a.png")
    with pytest.raises(DataError, match=r"folder .*nowhere not found"):
        tp.pairs_from_folders(tmp_path / "deg", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no images in .*empty"):
        tp.pairs_from_folders(tmp_path / "deg", tmp_path / "empty")
    _touch(tmp_path / "clean" / "a.png")
    _touch(tmp_path / "clean" / "a_gt.jpg")
    with pytest.raises(DataError, match="both match the name 'a'"):
        tp.pairs_from_folders(tmp_path / "deg", tmp_path / "clean")


# ----------------------------------------------------------------------------- layouts


def test_gopro_pairs_frames_per_scene(tmp_path):
    for split, scenes in (("train", ("GOPR0372_07_00", "GOPR0374_11_00")), ("test", ("S",))):
        for scene in scenes:
            for frame in ("000002.png", "000001.png"):
                for kind in ("blur", "blur_gamma", "sharp"):
                    _touch(tmp_path / split / scene / kind / frame)
    pairs = tp.gopro(tmp_path, "train")
    assert _names(pairs, tmp_path) == [
        (f"train/{s}/blur/{f}", f"train/{s}/sharp/{f}")
        for s in ("GOPR0372_07_00", "GOPR0374_11_00") for f in ("000001.png", "000002.png")]
    gamma = tp.find_pairs("gopro", tmp_path, "train", blur="blur_gamma")
    assert all(p.degraded.parent.name == "blur_gamma" for p in gamma) and len(gamma) == 4
    assert len(tp.find_pairs("GoPro", tmp_path, "test")) == 2
    with pytest.raises(DataError) as info:
        tp.gopro(tmp_path / "missing", "train")
    assert "missing/train" in str(info.value) and "GOPRO_Large" in str(info.value)
    with pytest.raises(DataError, match="unknown split 'val'"):
        tp.gopro(tmp_path, "val")


def test_dpdd_pairs_official_names_by_sorted_capture_number(tmp_path):
    base = tmp_path / "dd_dp_dataset_png"
    for src, tgt in (("1P0A0917", "1P0A0916"), ("1P0A0920", "1P0A0918"), ("1P0A1031", "1P0A1030")):
        _touch(base / "train_c" / "source" / f"{src}.png")
        _touch(base / "train_c" / "target" / f"{tgt}.png")
        _touch(base / "train_l" / "source" / f"{src}_L.png")  # dual-pixel views are ignored
    pairs = tp.find_pairs("dpdd", base, "train")
    assert [(p.degraded.stem, p.clean.stem) for p in pairs] == [
        ("1P0A0917", "1P0A0916"), ("1P0A0920", "1P0A0918"), ("1P0A1031", "1P0A1030")]
    assert all(p.degraded.parent == base / "train_c" / "source" for p in pairs)
    # equal names are paired by name
    for name in ("b.png", "a.png"):
        _touch(base / "val_c" / "source" / name)
        _touch(base / "val_c" / "target" / name)
    assert _names(tp.dpdd(base, "val"), base) == [
        ("val_c/source/a.png", "val_c/target/a.png"), ("val_c/source/b.png", "val_c/target/b.png")]
    # a missing target breaks the sorted pairing: a clear error, not shifted pairs
    (base / "train_c" / "target" / "1P0A0918.png").unlink()
    with pytest.raises(DataError, match="same number"):
        tp.dpdd(base, "train")
    _touch(base / "train_c" / "target" / "1P0A0999.png")
    with pytest.raises(DataError, match="capture"):
        tp.dpdd(base, "train")
    with pytest.raises(DataError, match=r"test_c.*dd_dp_dataset_png"):
        tp.dpdd(base, "test")


def test_snow100k_train_and_test_sizes(tmp_path):
    for name in ("beautiful_smile_00002.jpg", "beautiful_smile_00001.jpg"):
        _touch(tmp_path / "train" / "synthetic" / name)
        _touch(tmp_path / "train" / "gt" / name)
        _touch(tmp_path / "test" / "Snow100K-L" / "synthetic" / name)
        _touch(tmp_path / "test" / "Snow100K-L" / "gt" / name)
    _touch(tmp_path / "train" / "mask" / "beautiful_smile_00001.jpg")  # ignored
    pairs = tp.find_pairs("snow100k", tmp_path, "train")
    assert _names(pairs, tmp_path) == [
        (f"train/synthetic/{n}", f"train/gt/{n}")
        for n in ("beautiful_smile_00001.jpg", "beautiful_smile_00002.jpg")]
    assert tp.snow100k(tmp_path, "test") == tp.snow100k(tmp_path, "test-L")
    assert len(tp.snow100k(tmp_path, "test-L")) == 2
    # the official test archive nests the sizes deep down
    deep = tmp_path / "jdway" / "GameSSD" / "overlapping" / "test" / "Snow100K-M"
    _touch(deep / "synthetic" / "x.jpg")
    _touch(deep / "gt" / "x.jpg")
    assert _names(tp.snow100k(tmp_path, "test-M"), deep) == [("synthetic/x.jpg", "gt/x.jpg")]
    with pytest.raises(DataError, match="Snow100K-S"):
        tp.snow100k(tmp_path, "test-S")
    with pytest.raises(DataError, match="unknown split"):
        tp.snow100k(tmp_path, "val")


def test_outdoor_rain_shares_one_clean_image_between_rain_settings(tmp_path):
    for name in ("im_0001_s80_a04.png", "im_0001_s95_a06.png", "im_0002_s80_a04.png"):
        _touch(tmp_path / "train" / "in" / name)
    for name in ("im_0001.png", "im_0002.png"):
        _touch(tmp_path / "train" / "gt" / name)
    _touch(tmp_path / "test1" / "in" / "im_0601_s100_a05.png")
    _touch(tmp_path / "test1" / "gt" / "im_0601.png")
    pairs = tp.find_pairs("outdoor-rain", tmp_path, "train")
    assert _names(pairs, tmp_path) == [
        ("train/in/im_0001_s80_a04.png", "train/gt/im_0001.png"),
        ("train/in/im_0001_s95_a06.png", "train/gt/im_0001.png"),
        ("train/in/im_0002_s80_a04.png", "train/gt/im_0002.png")]
    assert _names(tp.outdoor_rain(tmp_path, "test"), tmp_path) == [
        ("test1/in/im_0601_s100_a05.png", "test1/gt/im_0601.png")]
    (tmp_path / "other" / "train" / "gt").mkdir(parents=True)
    with pytest.raises(DataError, match=r"train/in not found for the outdoor-rain layout"):
        tp.outdoor_rain(tmp_path / "other", "train")


def test_raindrop_rain_and_clean_suffixes(tmp_path):
    for n, ext in ((0, "png"), (1, "png"), (10, "jpg")):
        _touch(tmp_path / "train" / "data" / f"{n}_rain.{ext}")
        _touch(tmp_path / "train" / "gt" / f"{n}_clean.png")
        _touch(tmp_path / "test_a" / "data" / f"{n}_rain.png")
        _touch(tmp_path / "test_a" / "gt" / f"{n}_clean.{ext}")
    pairs = tp.find_pairs("raindrop", tmp_path, "train")
    assert len(pairs) == 3 and _sorted(pairs)
    assert {(p.degraded.name, p.clean.name) for p in pairs} == {
        ("0_rain.png", "0_clean.png"), ("1_rain.png", "1_clean.png"),
        ("10_rain.jpg", "10_clean.png")}
    assert tp.raindrop(tmp_path, "test") == tp.raindrop(tmp_path, "test_a")
    with pytest.raises(DataError) as info:
        tp.raindrop(tmp_path, "test_b")
    assert "test_b" in str(info.value) and "N_rain.png" in str(info.value)


def test_find_pairs_folders_and_unknown_layout(tmp_path):
    for name in ("x.png", "y.png"):
        _touch(tmp_path / "train" / "input" / name)
        _touch(tmp_path / "train" / "target" / name)
    auto = tp.find_pairs("folders", tmp_path, "train")
    assert _names(auto, tmp_path) == [("train/input/x.png", "train/target/x.png"),
                                      ("train/input/y.png", "train/target/y.png")]
    explicit = tp.find_pairs("folders", tmp_path, degraded_dir="train/input",
                             clean_dir="train/target")
    assert explicit == auto
    with pytest.raises(DataError, match="unknown dataset layout 'rain13k'.*gopro"):
        tp.find_pairs("rain13k", tmp_path)
    with pytest.raises(DataError, match="degraded_dir and clean_dir"):
        tp.find_pairs("folders", tmp_path / "train" / "input")


# ----------------------------------------------------------------------------- held-out split


def test_held_out_split_is_deterministic_disjoint_and_by_name(tmp_path):
    items = [tmp_path / f"img_{i:03d}.png" for i in range(40)]
    train, held = td.split_held_out(items, 0.25, seed=3)
    assert len(held) == 10 and len(train) == 30
    assert set(train).isdisjoint(held) and set(train) | set(held) == set(items)
    assert train == [p for p in items if p in set(train)]  # input order kept
    # only file names count: another folder and another order give the same split
    moved = [Path("/elsewhere") / p.name for p in reversed(items)]
    _, held_moved = td.split_held_out(moved, 0.25, seed=3)
    assert {p.name for p in held_moved} == {p.name for p in held}
    assert td.split_held_out(items, 0.25, seed=4)[1] != held
    # adding images keeps most held-out ones held out (ranking by a per-name hash)
    _, held_more = td.split_held_out(items + [tmp_path / "new.png"], 0.25, seed=3)
    assert len(set(held) & set(held_more)) >= 9
    assert td.split_held_out(items, 0.0) == (items, [])
    assert td.split_held_out(items[:3], ["img_001", "img_002.png"])[1] == items[1:3]
    with pytest.raises(DataError, match="'nope'"):
        td.split_held_out(items, ["nope"])
    with pytest.raises(ConfigError):
        td.split_held_out(items, 1.5)
    with pytest.raises(DataError, match="cannot hold out"):
        td.split_held_out(items[:1], 0.1)


def test_held_out_split_keeps_all_versions_of_a_clean_image_together():
    pairs = [Pair(Path(f"in/im_{i:04d}_s{s}_a04.png"), Path(f"gt/im_{i:04d}.png"))
             for i in range(20) for s in (80, 90, 95)]
    train, held = td.split_held_out(pairs, 0.2, seed=0)
    assert len(held) == 4 * 3
    assert {p.clean for p in train}.isdisjoint({p.clean for p in held})
    arrays = [np.full((2, 2, 3), i, np.float32) for i in range(5)]
    a_train, a_held = td.split_held_out(arrays, 0.4, seed=1)
    assert len(a_held) == 2 and len(a_train) == 3


# ----------------------------------------------------------------------------- crops


def test_random_crop_is_aligned_sized_and_pads_small_images():
    rng = np.random.default_rng(0)
    degraded = rng.random((40, 50, 3)).astype(np.float32)
    clean = degraded + 0.25  # any misalignment breaks the constant difference
    for seed in range(20):
        d, c = td.random_crop([degraded, clean], 16, np.random.default_rng(seed))
        assert d.shape == c.shape == (16, 16, 3)
        np.testing.assert_allclose(c - d, 0.25, atol=1e-6)
        d, c = td.augment([d, c], np.random.default_rng(seed))
        np.testing.assert_allclose(c - d, 0.25, atol=1e-6)
    d, c = td.random_crop([degraded, clean], (8, 12), rng)
    assert d.shape == (8, 12, 3)
    small = np.arange(5 * 7, dtype=np.float32).reshape(5, 7, 1)
    (padded,) = td.random_crop([small], 16, rng)
    assert padded.shape == (16, 16, 1)
    np.testing.assert_array_equal(padded[:5, :7], small)  # the image, then its reflection
    np.testing.assert_array_equal(padded[5, :7], small[3])
    assert td.random_crop([np.ones((1, 1, 3))], 4, rng)[0].shape == (4, 4, 3)
    with pytest.raises(ValueError, match="differ in size"):
        td.random_crop([degraded, clean[:30]], 8, rng)


def test_augment_uses_all_eight_transforms_identically():
    image = np.arange(3 * 3, dtype=np.float32).reshape(3, 3, 1)
    seen = set()
    for seed in range(64):
        a, b = td.augment([image, image * 10], np.random.default_rng(seed))
        np.testing.assert_array_equal(b, a * 10)
        seen.add(a.tobytes())
    assert len(seen) == 8


def _pair_files(tmp_path: Path, count: int = 4, size=(30, 40)) -> list[Pair]:
    pairs = []
    for i in range(count):
        rng = np.random.default_rng(i)
        degraded = rng.random((*size, 3)).astype(np.float32) * 0.5
        pairs.append(Pair(write_image(tmp_path / "d" / f"{i}.png", degraded, bit_depth=16),
                          write_image(tmp_path / "c" / f"{i}.png", degraded + 0.25, bit_depth=16)))
    return pairs


def test_paired_crops_are_aligned_and_deterministic_per_seed_epoch_index(tmp_path):
    pairs = _pair_files(tmp_path)
    ds = td.PairedCrops(pairs, 16, seed=7)
    item = ds[1]
    assert set(item) == {"degraded", "clean"}
    assert item["degraded"].shape == item["clean"].shape == (3, 16, 16)
    np.testing.assert_allclose((item["clean"] - item["degraded"]).numpy(), 0.25, atol=2e-4)
    again = td.PairedCrops(pairs, 16, seed=7)[1]  # a fresh instance (another worker, a resume)
    assert all((again[k] == item[k]).all() for k in item)
    assert not (ds[2]["degraded"] == item["degraded"]).all()
    assert not (td.PairedCrops(pairs, 16, seed=8)[1]["degraded"] == item["degraded"]).all()
    ds.set_epoch(1)
    epoch1 = ds[1]
    assert not (epoch1["degraded"] == item["degraded"]).all()
    ds.set_epoch(0)
    assert (ds[1]["degraded"] == item["degraded"]).all()
    assert td.PairedCrops(pairs, None, augment=False)[0]["clean"].shape == (3, 30, 40)
    assert len(td.PairedCrops([], 16)) == 0
    with pytest.raises(IndexError):
        ds[len(pairs)]


def test_paired_crops_cache_is_bounded_and_size_mismatch_is_named(tmp_path, monkeypatch):
    pairs = _pair_files(tmp_path, count=3)
    reads = []
    real = td.read_image
    monkeypatch.setattr(td, "read_image", lambda p: reads.append(Path(p).name) or real(p))
    one_image = 30 * 40 * 3 * 4
    ds = td.PairedCrops(pairs, 8)
    ds._cache.max_bytes = 2 * one_image  # room for exactly one pair
    ds[0], ds[0]
    assert len(reads) == 2  # the second access came from the cache
    ds[1], ds[0]
    assert len(reads) == 6 and ds._cache._bytes <= 2 * one_image
    bad = Pair(pairs[0].degraded, write_image(tmp_path / "small.png", np.zeros((20, 40, 3))))
    with pytest.raises(DataError, match=r"small.png differs in size: 40x30 vs 40x20"):
        td.PairedCrops([bad], 8)[0]


# ----------------------------------------------------------------------------- synthetic


@pytest.fixture
def fake_degrade(monkeypatch):
    """A stand-in trainer.degradations that halves the image and records its calls."""
    calls = []

    def degrade(task, clean, rng, *, held_out=False):
        assert isinstance(rng, np.random.Generator)
        calls.append((task, clean.shape, held_out, clean.copy()))
        return clean * 0.5

    fake = types.ModuleType("trainer.degradations")
    fake.TASKS = ("motion-deblur", "defocus-deblur", "derain-dehaze", "desnow", "raindrop")
    fake.degrade = degrade
    monkeypatch.setitem(sys.modules, "trainer.degradations", fake)
    monkeypatch.setattr(trainer, "degradations", fake, raising=False)
    return calls


def test_synthetic_pairs_crop_then_degrade_with_the_task(tmp_path, fake_degrade):
    files = [_touch(tmp_path / f"{n}.png", size=(40, 48)) for n in ("a", "b")]
    ds = td.SyntheticPairs(files, "desnow", 24, seed=2, held_out=True, length=5)
    assert len(ds) == 5
    item = ds[3]
    assert item["degraded"].shape == item["clean"].shape == (3, 24, 24)
    np.testing.assert_allclose(item["degraded"].numpy(), item["clean"].numpy() * 0.5, atol=1e-6)
    task, shape, held_out, seen = fake_degrade[-1]
    assert (task, shape, held_out) == ("desnow", (24, 24, 3), True)
    np.testing.assert_array_equal(seen.transpose(2, 0, 1), item["clean"].numpy())
    assert (ds[3]["clean"] == item["clean"]).all()
    ds.set_epoch(2)
    assert not (ds[3]["clean"] == item["clean"]).all()
    arrays = [np.random.default_rng(0).random((20, 20, 3)).astype(np.float32)]
    small = td.SyntheticPairs(arrays, "raindrop", 32, length=2)
    assert small[1]["clean"].shape == (3, 32, 32) and fake_degrade[-1][0] == "raindrop"
    assert len(td.SyntheticPairs([], "raindrop", 32, length=4)) == 0
    with pytest.raises(ConfigError, match="unknown task 'deblur'"):
        td.SyntheticPairs(files, "deblur", 24)


def test_synthetic_pairs_with_the_real_degradations(tmp_path):
    real = pytest.importorskip("trainer.degradations")
    if not hasattr(real, "degrade"):
        pytest.skip("trainer.degradations has no degrade() yet")
    clean = np.random.default_rng(1).random((48, 48, 3)).astype(np.float32)
    ds = td.SyntheticPairs([clean], real.TASKS[0], 32, seed=1, length=2)
    item = ds[0]
    assert item["degraded"].shape == item["clean"].shape == (3, 32, 32)
    assert item["degraded"].dtype == item["clean"].dtype == torch.float32
    assert 0.0 <= float(item["degraded"].min()) and float(item["degraded"].max()) <= 1.0
    assert (ds[0]["degraded"] == item["degraded"]).all()


def test_prepared_patches_need_a_prepared_folder(tmp_path):
    with pytest.raises(DataError, match="dtpm-train prepare"):
        td.PreparedPatches(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="dtpm-train prepare"):
        td.PreparedPatches(tmp_path / "empty")
