"""The OpenVINO backend (issue 22): every network and whole restorations match torch fp32
within 1e-4 (max abs, images in [0, 1]); bf16 within the torch fast path's bar; converted
once, with progress, and a damaged cache entry rebuilt. Skipped where openvino is missing."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from model_factory import tiny_model

pytest.importorskip("openvino")


from dtpm_core.backends import device as device_module  # noqa: E402
from dtpm_core.backends.compiled_cache import (  # noqa: E402
    COMPILED_FOLDER,
    compiled_cache_folder,
)
from dtpm_core.backends.graph_cache import GraphCache  # noqa: E402
from dtpm_core.backends.graphs import (  # noqa: E402
    denoiser_graph,
    predictor_graph,
    semantic_graph,
)
from dtpm_core.backends.openvino_backend import (  # noqa: E402
    OpenVINOSession,
    convert,
    pad_images,
)
from dtpm_core.config import Stage2Options  # noqa: E402
from dtpm_core.engines.dtpm_restorer import Restorer  # noqa: E402
from dtpm_core.engines.engine import DTPMSpec, SinglePassSpec, load_engine  # noqa: E402
from dtpm_core.engines.singlepass_restorer import SinglePassRestorer  # noqa: E402
from dtpm_core.evaluation.metrics import psnr  # noqa: E402
from dtpm_core.modelfiles.verified import read_base_info  # noqa: E402
from dtpm_core.modelfiles.weights import (  # noqa: E402
    load_adapter,
    load_base,
    save_adapter,
    save_base,
)
from dtpm_core.networks.layers import pad_with_context  # noqa: E402
from dtpm_core.networks.semantic_input import semantic_input  # noqa: E402
from dtpm_core.singlepass.config import singlepass_preset  # noqa: E402
from dtpm_core.singlepass.graph import singlepass_graph  # noqa: E402
from dtpm_core.singlepass.info import read_singlepass_info  # noqa: E402
from dtpm_core.singlepass.network import SinglePassNet  # noqa: E402
from dtpm_core.singlepass.weights import load_singlepass, save_singlepass  # noqa: E402

FP32_TOLERANCE = 1e-4
"""Max abs difference from torch fp32 (issue 22), images in [0, 1] and network outputs."""
BF16_PSNR = 40.0
"""The bar the torch fast path meets against fp32 (tests/core/test_fast_path.py)."""
SIZES = [(64, 64), (37, 70), (21, 9)]  # a multiple of 16, odd sizes, smaller than the margin
TASKS = {"desnow": 15, "raindrop": 22}


@pytest.fixture(scope="module")
def dtpm_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ov_dtpm")
    model = tiny_model(Stage2Options(), semantic="random", seed=3)
    sha = save_base(folder / "base.safetensors", model)
    save_adapter(folder / "motion.safetensors", model, "motion-deblur", sha)
    return folder


@pytest.fixture(scope="module")
def singlepass_file(tmp_path_factory):
    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny", width=8, cond_dim=16,
                                          adaptor_tasks=tuple(TASKS)))
    with torch.no_grad():  # adaptors that matter, routers that pick different experts
        for adaptor in net.adaptors:
            adaptor.scale.fill_(0.5)
            for param in adaptor.router.parameters():
                param.normal_(0.0, 1.0)
    path = tmp_path_factory.mktemp("ov_sp") / "fast.safetensors"
    save_singlepass(path, net.eval(), tasks=TASKS)
    return path


@pytest.fixture(scope="module")
def photo():
    from skimage import data
    return np.ascontiguousarray(data.astronaut()[100:196, 120:248] / 255.0, dtype=np.float32)


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).max())


def _randn(*shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_the_padding_outside_the_graph_is_the_networks_own():
    for h, w in [*SIZES, (16, 16), (17, 100)]:
        x = _randn(1, 3, h, w)
        for multiple, margin in ((16, 16), (8, 0)):
            expected, crop = pad_with_context(x, multiple, margin)
            padded, crop_np = pad_images(x.numpy(), multiple, margin)
            assert np.array_equal(padded, expected.numpy()) and crop_np == crop, (h, w)


def test_every_dtpm_network_matches_torch_fp32(dtpm_files):
    model, info = load_base(dtpm_files / "base.safetensors")
    task = load_adapter(dtpm_files / "motion.safetensors", model, info)
    session = OpenVINOSession("fp32", threads=1)
    denoiser, _ = session.network(denoiser_graph(info, task.info))
    predictor, _ = session.network(predictor_graph(info, task.info))
    plain, _ = session.network(denoiser_graph(info, None))  # Stage I, no adapters
    semantic = _randn(1, 512, seed=9)
    with torch.no_grad():
        for i, (h, w) in enumerate(SIZES):
            x, y_d, guide = (_randn(1, 3, h, w, seed=i * 3 + j) for j in range(3))
            level = torch.full((1,), 0.3 + 0.2 * i)
            expected = model.denoiser(x, y_d, level, semantic, adapters=task.adapters,
                                      guidance=guide)
            out = denoiser(x_t=x.numpy(), y_d=y_d.numpy(), sqrt_gamma=level.numpy(),
                           semantic_code=semantic.numpy(), guidance=guide.numpy())
            assert out.shape == expected.shape and out.dtype == np.float32
            assert _max_diff(out, expected) < FP32_TOLERANCE, (h, w)
            assert _max_diff(plain(x_t=x.numpy(), y_d=y_d.numpy(), sqrt_gamma=level.numpy(),
                                   semantic_code=semantic.numpy()),
                             model.denoiser(x, y_d, level, semantic)) < FP32_TOLERANCE
            assert _max_diff(predictor(y_d=y_d.numpy()), task.predictor(y_d)) < FP32_TOLERANCE


@pytest.mark.parametrize("mode", ["random", "efficientnet-lite0"])
def test_the_semantic_encoder_graph_matches_torch_fp32(mode, tmp_path):
    """A base with a semantic encoder runs it on OpenVINO too, for any image size (resized in
    numpy first), as the torch engine computes the code."""
    from dtpm_core.networks.semantic import downscale_for_semantics

    model = tiny_model(Stage2Options(), semantic=mode, seed=1)
    save_base(tmp_path / "base.safetensors", model)
    info = read_base_info(tmp_path / "base.safetensors")
    network, _ = OpenVINOSession("fp32", threads=1).network(semantic_graph(info))
    with torch.no_grad():
        for i, (h, w) in enumerate([*SIZES, (300, 451)]):
            y_eps = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(i)) * 2 - 1
            expected = model.semantic_code(downscale_for_semantics(y_eps).add(1).mul(0.5))
            (code,) = network.outputs(image=semantic_input(y_eps.numpy()))
            assert code.shape == tuple(expected.shape)
            assert _max_diff(code, expected) < FP32_TOLERANCE, (mode, h, w)
    assert len(network._compiled) == 1  # one fixed input size: compiled once for every photo


def test_converting_a_network_prints_no_tracer_warning(dtpm_files, singlepass_file, tmp_path):
    """A first use converts the networks in front of the user (`dtpm-restore` shows warnings
    of our modules): a data-dependent branch the trace would freeze is a bug, not a notice."""
    model, info = load_base(dtpm_files / "base.safetensors")
    task = load_adapter(dtpm_files / "motion.safetensors", model, info)
    specs = [denoiser_graph(info, task.info), predictor_graph(info, task.info),
             *(singlepass_graph(read_singlepass_info(singlepass_file), k) for k in (2, 0))]
    for mode in ("random", "efficientnet-lite0"):
        save_base(tmp_path / f"{mode}.safetensors", tiny_model(semantic=mode))
        specs.append(semantic_graph(read_base_info(tmp_path / f"{mode}.safetensors")))
    for i, spec in enumerate(specs):
        (tmp_path / str(i)).mkdir()
        with warnings.catch_warnings():
            warnings.simplefilter("error", torch.jit.TracerWarning)
            convert(spec, tmp_path / str(i))


@pytest.mark.parametrize("experts", [2, 0])
def test_the_single_pass_network_matches_torch_fp32_with_top_k_experts(singlepass_file,
                                                                       experts):
    """The graph runs only the experts the router picks per image (gathered by its choice;
    0: all of them), as the torch path does."""
    net, info = load_singlepass(singlepass_file)
    net.eval().set_inference_top_k(experts)
    network, _ = OpenVINOSession("fp32", threads=1).network(singlepass_graph(info, experts))
    picked = set()  # (adaptor, the two experts it picked)
    for index, adaptor in enumerate(net.adaptors):
        adaptor.register_forward_hook(lambda m, args, out, i=index: picked.add(
            (i, tuple(m.route(*args).topk(2).indices[0].tolist()))))
    with torch.no_grad():
        for i, (h, w) in enumerate(SIZES):
            x = _randn(1, 3, h, w, seed=i)
            for t_mat in TASKS.values():
                t = torch.full((1,), t_mat, dtype=torch.long)
                assert _max_diff(network(x=x.numpy(), t=t.numpy()), net(x, t)) < FP32_TOLERANCE, \
                    (h, w, t_mat)
    assert len(picked) > len(net.adaptors)  # some adaptor picked different experts by input


def test_dtpm_restorations_match_torch_fp32_at_k_1_4_10_with_tiles(dtpm_files, photo):
    files = (dtpm_files / "base.safetensors", dtpm_files / "motion.safetensors")
    exact = Restorer(*files, device="cpu", precision="fp32")
    ov = Restorer(*files, device="cpu", precision="fp32", backend="openvino")
    assert ov.backend == "openvino"
    for tile in (64, 0):  # 2 x 3 overlapping tiles, then the whole image
        a = exact.restore(photo, [1, 4, 10], seed=3, tile=tile)
        b = ov.restore(photo, [1, 4, 10], seed=3, tile=tile)
        assert _max_diff(b.initial, a.initial) < FP32_TOLERANCE
        for k in (1, 4, 10):
            assert _max_diff(b.results[k], a.results[k]) < FP32_TOLERANCE, (tile, k)


def test_single_pass_restorations_match_torch_fp32_with_tiles_and_ensemble(singlepass_file,
                                                                          photo):
    exact = SinglePassRestorer(singlepass_file, "cpu", precision="fp32")
    ov = SinglePassRestorer(singlepass_file, "cpu", precision="fp32", backend="openvino")
    for tile, ensemble in ((64, False), (0, True)):
        a = exact.restore(photo, "raindrop", tile=tile, ensemble=ensemble).result
        b = ov.restore(photo, "raindrop", tile=tile, ensemble=ensemble).result
        assert _max_diff(b, a) < FP32_TOLERANCE, (tile, ensemble)


def test_bf16_is_within_the_fast_paths_bar(dtpm_files, singlepass_file, photo, monkeypatch):
    # native bf16 said yes: OpenVINO runs bf16 where the CPU has it (and f32 where not)
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda flags=None: True)
    files = (dtpm_files / "base.safetensors", dtpm_files / "motion.safetensors")
    exact = Restorer(*files, device="cpu", precision="fp32").restore(photo, [1, 4], seed=3,
                                                                     tile=64)
    fast = Restorer(*files, device="cpu", backend="openvino")
    assert fast.precision == "bf16"
    out = fast.restore(photo, [1, 4], seed=3, tile=64)
    for k in (1, 4):
        assert out.results[k].dtype == np.float32
        assert psnr(out.results[k], exact.results[k]) > BF16_PSNR, k
    exact_sp = SinglePassRestorer(singlepass_file, "cpu", precision="fp32").restore(
        photo, "desnow", tile=0).result
    fast_sp = SinglePassRestorer(singlepass_file, "cpu", precision="bf16", backend="openvino")
    assert psnr(fast_sp.restore(photo, "desnow", tile=0).result, exact_sp) > BF16_PSNR


@pytest.mark.slow  # converts the network twice (seconds each on a quiet machine)
def test_first_use_converts_with_progress_and_a_damaged_entry_is_rebuilt(singlepass_file,
                                                                         photo, tmp_path,
                                                                         monkeypatch):
    monkeypatch.setenv("DTPM_GRAPH_CACHE", str(tmp_path))
    spec = SinglePassSpec(singlepass_file, task="desnow", device="cpu", precision="fp32",
                          backend="openvino", tile=0)

    def restore() -> tuple[list[str], object]:
        stages: list[str] = []
        result = load_engine(spec).restore(photo, progress=lambda p: stages.append(p.stage))
        return stages, result

    stages, first = restore()
    assert stages[0] == "converting" and stages.count("converting") == 1
    entries = GraphCache(tmp_path).entries()
    assert len(entries) == 1
    stages, again = restore()  # a new engine: read from the cache, not converted
    assert "converting" not in stages
    assert np.array_equal(again.image, first.image)
    entry = entries[0]
    (entry / "model.bin").write_bytes((entry / "model.bin").read_bytes()[:-100])  # truncated
    stages, rebuilt = restore()
    assert "converting" in stages
    assert any("unusable" in note and "truncated" in note for note in rebuilt.notes)
    assert np.array_equal(rebuilt.image, first.image)
    assert "converting" not in restore()[0]  # the rebuilt entry checks out


def test_a_compiled_network_is_kept_and_a_damaged_one_compiled_again(singlepass_file, photo,
                                                                     tmp_path):
    """What OpenVINO compiled for a size is written to the cache's compiled/ folder and read
    back by a later session; a blob damaged on disk is compiled again, never used."""
    _, info = load_singlepass(singlepass_file)
    spec = singlepass_graph(info, 2)
    x = np.ascontiguousarray(photo.transpose(2, 0, 1)[None])
    t = np.full((1,), TASKS["desnow"], dtype=np.int64)

    def open_session() -> OpenVINOSession:
        return OpenVINOSession("fp32", threads=1, shape_policy="static",
                               cache=GraphCache(tmp_path))

    def run(session: OpenVINOSession | None = None) -> np.ndarray:
        return (session or open_session()).network(spec)[0](x=x, t=t)

    first = run()
    blobs = list((tmp_path / COMPILED_FOLDER).iterdir())
    assert len(blobs) == 1 and blobs[0].stat().st_size > 0
    assert np.array_equal(run(), first)  # read back
    damaged = bytearray(blobs[0].read_bytes())
    for i in range(len(damaged) // 3, len(damaged), 997):
        damaged[i] ^= 0xFF
    blobs[0].chmod(0o600)
    blobs[0].write_bytes(bytes(damaged))
    assert np.array_equal(run(), first)
    assert blobs[0].read_bytes() != bytes(damaged)  # compiled again and rewritten
    # the folder gone unwritable while a session holds it (here: a file in its place)
    session = open_session()
    shutil.rmtree(tmp_path / COMPILED_FOLDER)
    (tmp_path / COMPILED_FOLDER).write_text("not a folder")
    assert np.array_equal(run(session), first)
    assert compiled_cache_folder(tmp_path) is None  # the next session compiles afresh
    assert np.array_equal(run(), first)


def test_the_engine_spec_chooses_the_backend(dtpm_files, photo, monkeypatch):
    from dtpm_core import backends

    files = (dtpm_files / "base.safetensors", dtpm_files / "motion.safetensors")
    monkeypatch.setattr(backends.platform, "machine", lambda: "x86_64")
    engine = load_engine(DTPMSpec(*files, steps=(2,), device="cpu", precision="fp32", tile=0))
    assert engine.backend == "openvino"  # auto: installed, on an x86-64 CPU
    torch_engine = load_engine(DTPMSpec(*files, steps=(2,), device="cpu", precision="fp32",
                                        tile=0, backend="torch"))
    assert torch_engine.backend == "torch"
    assert _max_diff(engine.restore(photo).image,
                     torch_engine.restore(photo).image) < FP32_TOLERANCE
    monkeypatch.setattr(backends, "openvino_installed", lambda: False)
    assert load_engine(DTPMSpec(*files, device="cpu")).backend == "torch"
    monkeypatch.setattr(backends, "openvino_installed", lambda: True)
    monkeypatch.setattr(backends.platform, "machine", lambda: "arm64")
    assert load_engine(DTPMSpec(*files, device="cpu")).backend == "torch"  # never measured


def test_dtpm_restore_backend_option(dtpm_files, photo, tmp_path):
    from dtpm_core.cli import main
    from dtpm_core.files.batch_report import EXIT_OK, EXIT_USAGE
    from dtpm_core.files.imageio import read_image, write_image

    source = tmp_path / "in.png"
    write_image(source, photo, bit_depth=8)
    args = ["--base", str(dtpm_files / "base.safetensors"), "--adapter",
            str(dtpm_files / "motion.safetensors"), "--device", "cpu", "--precision", "fp32",
            "--steps", "2", "--tile", "64", "-q"]
    for backend in ("torch", "openvino"):
        assert main([str(source), "-o", str(tmp_path / backend), *args,
                     "--backend", backend]) == EXIT_OK
    a, b = (read_image(tmp_path / name / "in.png").rgb for name in ("torch", "openvino"))
    assert _max_diff(a, b) <= 1.0 / 255 + 1e-6  # 8-bit files: at most one step apart
    with pytest.raises(SystemExit) as refused:  # argparse: not one of the choices
        main([str(source), "-o", str(tmp_path / "x"), *args, "--backend", "onnx"])
    assert refused.value.code == EXIT_USAGE


@pytest.mark.slow
def test_the_bundled_models_match_torch_fp32(photo):
    models = Path(__file__).resolve().parents[2] / "resources" / "models"
    files = (models / "base.safetensors", models / "motion-deblur.safetensors")
    exact = Restorer(*files, device="cpu", precision="fp32")
    ov = Restorer(*files, device="cpu", precision="fp32", backend="openvino")
    a = exact.restore(photo, [1, 4, 10], seed=1, tile=64)
    b = ov.restore(photo, [1, 4, 10], seed=1, tile=64)
    assert _max_diff(b.initial, a.initial) < FP32_TOLERANCE
    for k in (1, 4, 10):
        assert _max_diff(b.results[k], a.results[k]) < FP32_TOLERANCE, k
    single = models / "singlepass.safetensors"
    a = SinglePassRestorer(single, "cpu", precision="fp32").restore(photo, "desnow", tile=64)
    b = SinglePassRestorer(single, "cpu", precision="fp32", backend="openvino").restore(
        photo, "desnow", tile=64)
    assert _max_diff(b.result, a.result) < FP32_TOLERANCE


def test_an_fp16_file_restores_like_torch_and_its_graph_stores_only_weights_in_fp16(tmp_path,
                                                                                     photo):
    """A file stored in fp16 gets fp16 weights in its graph (half the size) and nothing else
    rounded: OpenVINO's own compress_to_fp16 also rounded the small constants, which put a
    shipped restoration 2.5e-4 off torch after four DDIM steps."""
    import openvino as ov
    from openvino import opset13

    from dtpm_core.backends.openvino_backend import FP16_MIN_ELEMENTS, convert, fp16_where_exact

    model = tiny_model(Stage2Options(), semantic="random", seed=5)
    sizes = {}
    for storage in ("fp32", "fp16"):
        folder = tmp_path / storage
        folder.mkdir()
        sha = save_base(folder / "base.safetensors", model, storage=storage)
        save_adapter(folder / "motion.safetensors", model, "motion-deblur", sha,
                     storage=storage)
        files = (folder / "base.safetensors", folder / "motion.safetensors")
        exact = Restorer(*files, device="cpu", precision="fp32")
        graphs = Restorer(*files, device="cpu", precision="fp32", backend="openvino")
        a = exact.restore(photo, [1, 4], seed=1, tile=64)
        b = graphs.restore(photo, [1, 4], seed=1, tile=64)
        assert _max_diff(b.initial, a.initial) < FP32_TOLERANCE, storage
        for k in (1, 4):
            assert _max_diff(b.results[k], a.results[k]) < FP32_TOLERANCE, (storage, k)
        info = load_base(files[0])[1]
        spec = denoiser_graph(info, load_adapter(files[1], load_base(files[0])[0], info).info)
        convert(spec, folder)
        sizes[storage] = (folder / "model.bin").stat().st_size
    assert sizes["fp16"] < 0.6 * sizes["fp32"]
    # only large constants whose values are all fp16 values change type
    x = opset13.parameter([FP16_MIN_ELEMENTS], ov.Type.f32, name="x")
    inexact = np.linspace(0.0, 1.0, FP16_MIN_ELEMENTS, dtype=np.float32)
    y = opset13.add(opset13.multiply(x, opset13.constant(inexact)),
                    opset13.constant(np.float32(0.5)))  # exact, but a scalar
    z = opset13.multiply(y, opset13.constant(np.full(FP16_MIN_ELEMENTS, 0.5, np.float32)))
    graph = fp16_where_exact(ov.Model([z], [x]))
    constants = [op for op in graph.get_ordered_ops() if op.get_type_name() == "Constant"]
    assert sorted(op.get_element_type() == ov.Type.f16 for op in constants) == \
        [False, False, True]


def test_compiling_ahead_gives_the_same_restorations_without_compiling_again(
        dtpm_files, singlepass_file, photo, tmp_path, monkeypatch):
    """`Engine.compile_ahead` compiles each network for the photo's windows in the background
    (the CLI calls it before reading the photo): the restore that follows waits for those
    instead of compiling, and its result is the one of a restore without it."""
    from dtpm_core.backends.openvino_backend import OpenVINONetwork

    monkeypatch.setenv("DTPM_GRAPH_CACHE", str(tmp_path))
    compiled_now: list[str] = []
    original = OpenVINONetwork._compile

    def counting(self, model, shapes):
        compiled_now.append(self.role)
        return original(self, model, shapes)

    monkeypatch.setattr(OpenVINONetwork, "_compile", counting)
    height, width = photo.shape[:2]
    specs = [DTPMSpec(dtpm_files / "base.safetensors", dtpm_files / "motion.safetensors",
                      steps=2, seed=1, tile=64, device="cpu", precision="fp32",
                      backend="openvino"),
             SinglePassSpec(singlepass_file, task="desnow", tile=0, ensemble=True,
                            device="cpu", precision="fp32", backend="openvino")]
    for spec in specs:
        plain = load_engine(spec).restore(photo).image  # converts into the cache
        engine = load_engine(spec)
        engine.prepare()
        compiled_now.clear()
        started = engine.compile_ahead([(height, width)])
        # DTPM: the predictor and the denoiser for the 64 px windows (all of one size);
        # single-pass: the photo and its transpose (the ensemble's rotated variants)
        assert started == len(compiled_now) == 2
        assert engine.compile_ahead([(height, width)]) == 0  # compiling already
        result = engine.restore(photo)
        # the semantic encoder sees one size whatever the photo's: compiled on first use
        assert [role for role in compiled_now[started:] if role != "semantic"] == [], \
            "the restore compiled again"
        assert np.array_equal(result.image, plain)


def test_compiling_ahead_does_nothing_on_torch_or_without_a_graph(singlepass_file, photo,
                                                                  tmp_path, monkeypatch):
    monkeypatch.setenv("DTPM_GRAPH_CACHE", str(tmp_path / "empty"))
    size = photo.shape[:2]
    spec = SinglePassSpec(singlepass_file, task="desnow", device="cpu", precision="fp32",
                          backend="torch")
    assert load_engine(spec).compile_ahead([size]) == 0
    # no converted graph yet: the restore converts it, with progress, not the head start
    engine = load_engine(SinglePassSpec(singlepass_file, task="desnow", device="cpu",
                                        precision="fp32", backend="openvino"))
    assert engine.compile_ahead([size]) == 0
    assert GraphCache(tmp_path / "empty").entries() == []


def test_a_new_photo_drops_what_was_compiled_ahead_for_the_last(singlepass_file, tmp_path):
    """Each compiled size holds its buffers: compiling ahead for another photo drops the
    compiles no image used, and a size compiled already starts nothing."""
    _, info = load_singlepass(singlepass_file)
    session = OpenVINOSession("fp32", threads=1, shape_policy="static",
                              cache=GraphCache(tmp_path))
    network, _ = session.network(singlepass_graph(info, 2))
    assert network.compile_ahead([(40, 56), (56, 40)]) == 2
    assert network.compile_ahead([(40, 56), (56, 40)]) == 0  # under way already
    assert network.compile_ahead([(64, 64)]) == 1
    assert list(network._ahead) == [(64, 64)]
    x = np.zeros((1, 3, 64, 64), np.float32)
    t = np.full((1,), TASKS["desnow"], dtype=np.int64)
    network(x=x, t=t)  # uses the compile started ahead
    assert not network._ahead and (64, 64) in network._compiled
    assert network.compile_ahead([(64, 64)]) == 0  # compiled already
