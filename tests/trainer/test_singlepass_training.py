"""`dtpm-train singlepass`: MTUL plan and cumulative data, the GEF objective's switches,
anchors across a resume, calibration, and pretrain -> finetune -> export -> restore."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from fast_settings import FAST

from dtpm_core.cli import main as restore_main
from dtpm_core.errors import ConfigError
from dtpm_core.files.imageio import read_image
from dtpm_core.modelfiles.weights import WeightsError
from dtpm_core.singlepass.config import singlepass_preset
from dtpm_core.singlepass.info import read_singlepass_info
from dtpm_core.singlepass.network import SinglePassNet, restoration_loss
from dtpm_core.singlepass.weights import load_singlepass, save_singlepass
from trainer.cli import main as train_main
from trainer.config import SinglePassTrainConfig, load_config
from trainer.singlepass.calibrate import Calibration, calibrate
from trainer.singlepass.objective import ANCHOR_NAME, GEFLoss, compute_anchor
from trainer.singlepass.train import build_finetune, multitask_plan, new_net

FIVE = ("motion-deblur", "defocus-deblur", "derain-dehaze", "desnow", "raindrop")
SP_FAST = [*FAST, "singlepass.preset=\"tiny\"", "singlepass.overrides.width=8",
           "singlepass.omega_batches=2", "data.synthetic_length=8"]


def _sets(*extra):
    args = []
    for item in (*SP_FAST, *extra):
        args += ["--set", item]
    return args


def _config(clean_folder, *extra):
    return load_config("singlepass_cpu", [*SP_FAST, f'data.clean=["{clean_folder}"]', *extra])


def test_multitask_plan_is_ascending_t_mat_and_cumulative():
    plan = multitask_plan(FIVE)
    assert plan == [["desnow"], ["desnow", "raindrop"],
                    ["desnow", "raindrop", "derain-dehaze"],
                    ["desnow", "raindrop", "derain-dehaze", "motion-deblur"],
                    ["desnow", "raindrop", "derain-dehaze", "motion-deblur", "defocus-deblur"]]
    with pytest.raises(ConfigError, match="twice"):
        multitask_plan(["desnow", "desnow"])
    with pytest.raises(ConfigError):
        multitask_plan([])


def test_each_step_trains_on_the_union_with_its_own_time_steps(clean_folder, tmp_path):
    config = _config(clean_folder, "singlepass.regulariser=false")
    job = build_finetune(config, tmp_path / "run", ["desnow", "raindrop"], None, "x.safetensors",
                         adaptor_tasks=FIVE)
    parts = job.dataset.datasets
    assert [(p.dataset.task, p.t_mat) for p in parts] == [("desnow", 15), ("raindrop", 22)]
    assert len(job.dataset) == 2 * 8
    steps = {int(job.dataset[i]["t"]) for i in range(len(job.dataset))}
    assert steps == {15, 22}
    assert job.model.config.adaptor_tasks == FIVE


def _task_shares(dataset):
    by_t = {part.t_mat: part.dataset.task for part in dataset.datasets}
    counts = {task: 0 for task in by_t.values()}
    for i in range(len(dataset)):
        counts[by_t[int(dataset[i]["t"])]] += 1
    return {task: n / len(dataset) for task, n in counts.items()}


def test_task_weights_set_each_tasks_share_of_the_training_draws(clean_folder, tmp_path):
    config = _config(clean_folder, "singlepass.regulariser=false", "data.synthetic_length=60",
                     "singlepass.task_weights.desnow=3", "singlepass.task_weights.raindrop=0")
    tasks = ["desnow", "raindrop", "derain-dehaze"]
    job = build_finetune(config, tmp_path / "run", tasks, None, "x.safetensors",
                         adaptor_tasks=FIVE)
    assert job.extra_state["task_weights"] == {"desnow": 3.0, "raindrop": 0.0,
                                               "derain-dehaze": 1.0}
    dataset = job.dataset
    shares = _task_shares(dataset)
    assert shares["raindrop"] == 0.0  # weight 0: never drawn
    assert 0.62 < shares["desnow"] < 0.88  # 3 : 1 -> 0.75 expected
    first = dataset[5]
    assert all(torch.equal(first[k], dataset[5][k]) for k in first)  # the same item on rereading
    dataset.set_epoch(1)
    assert _task_shares(dataset) != shares
    plain = build_finetune(_config(clean_folder, "singlepass.regulariser=false",
                                   "data.synthetic_length=60"), tmp_path / "plain", tasks, None,
                           "x.safetensors", adaptor_tasks=FIVE)
    assert "task_weights" not in plain.extra_state  # no weights: each task's data once an epoch
    assert _task_shares(plain.dataset) \
        == {"desnow": 1 / 3, "raindrop": 1 / 3, "derain-dehaze": 1 / 3}


@pytest.mark.parametrize(("weights", "tasks", "message"), [
    (["singlepass.task_weights.sunburn=2"], ["desnow", "raindrop"], "unknown task 'sunburn'"),
    (["singlepass.task_weights.desnow=-1"], ["desnow", "raindrop"], "number >= 0"),
    (['singlepass.task_weights.desnow="lots"'], ["desnow", "raindrop"], "number >= 0"),
    (["singlepass.task_weights.desnow=2"], ["desnow"], "this run trains one task"),
    (["singlepass.task_weights.motion-deblur=2"], ["desnow", "raindrop"], "does not train"),
    (["singlepass.task_weights.desnow=0", "singlepass.task_weights.raindrop=0"],
     ["desnow", "raindrop"], "leaves no task"),
])
def test_task_weights_that_cannot_be_honoured_are_refused(clean_folder, tmp_path, weights,
                                                           tasks, message):
    with pytest.raises(ConfigError, match=message):
        build_finetune(_config(clean_folder, "singlepass.regulariser=false", *weights),
                       tmp_path / "run", tasks, None, "x.safetensors")
    assert not (tmp_path / "run").exists()


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(2, 3, 16, 16, generator=g)
    degraded = (clean + 0.1 * torch.randn(2, 3, 16, 16, generator=g)).clamp(0, 1)
    return {"degraded": degraded, "clean": clean, "t": torch.tensor([15, 22])}


def _grads(net, settings, anchor=None):
    net.zero_grad(set_to_none=True)
    loss = GEFLoss(net, settings, anchor)(_batch(), torch.Generator().manual_seed(3))
    loss.backward()
    return loss.detach(), torch.cat([p.grad.reshape(-1) for p in net.parameters()
                                     if p.grad is not None])


@pytest.fixture()
def net():
    torch.manual_seed(0)
    model = SinglePassNet(singlepass_preset("tiny", width=8))
    with torch.no_grad():  # move away from the zero-initialised ending so gradients are rich
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    return model


def test_orthogonality_loss_changes_gradients_and_the_reference_constant_does_not(net):
    base = SinglePassTrainConfig(gen_probability=1.0, regulariser=False, generative=True)
    _, off = _grads(net, dataclasses.replace(base, orthogonality="off"))
    _, with_loss = _grads(net, dataclasses.replace(base, orthogonality="loss"))
    loss_detached, detached = _grads(net, dataclasses.replace(base, orthogonality="detached"))
    assert not torch.allclose(off, with_loss)  # the term really back-propagates
    torch.testing.assert_close(detached, off)  # the reference code's term: no gradient
    loss_off, _ = _grads(net, dataclasses.replace(base, orthogonality="off"))
    assert loss_detached > loss_off  # ... but it is in the loss value


def test_projection_removes_the_conflicting_component(net):
    settings = SinglePassTrainConfig(gen_probability=1.0, regulariser=False, generative=False,
                                     orthogonality="projection")
    loss, projected = _grads(net, settings)
    l1_only = dataclasses.replace(settings, orthogonality="off")
    loss_plain, plain = _grads(net, l1_only)
    torch.testing.assert_close(loss, loss_plain)  # same value, only the gradient differs
    # the generative gradient at the same point
    from dtpm_core.singlepass.network import tmddp_loss
    from dtpm_core.singlepass.schedule import sigma_bars
    gen = torch.Generator().manual_seed(3)
    torch.rand((), generator=gen)  # the coin GEFLoss draws first
    net.zero_grad(set_to_none=True)
    tmddp_loss(net, _batch()["clean"], gen, sigma_bars().float()).backward()
    g_gen = torch.cat([p.grad.reshape(-1) for p in net.parameters() if p.grad is not None])
    if torch.dot(plain, g_gen) < 0:
        assert torch.dot(projected, g_gen).abs() < 1e-4 * plain.norm() * g_gen.norm()
    else:
        torch.testing.assert_close(projected, plain)


def test_plain_l1_is_exactly_the_restoration_loss(net):
    settings = SinglePassTrainConfig(gen_probability=1.0, generative=False, regulariser=False,
                                     orthogonality="off")
    assert not settings.diffusion_terms
    batch = _batch()
    loss = GEFLoss(net, settings, None)(batch, torch.Generator().manual_seed(0))
    y = net(batch["degraded"] * 2 - 1, batch["t"])
    torch.testing.assert_close(loss, restoration_loss((y + 1) / 2, batch["clean"]))


def test_regulariser_needs_and_uses_the_anchor(net):
    settings = SinglePassTrainConfig(gen_probability=1.0, orthogonality="off")
    with pytest.raises(ValueError, match="anchor"):
        GEFLoss(net, settings, None)
    batches = iter([_batch(i)["clean"] for i in range(2)])
    anchor = compute_anchor(net, batches, 2, seed=0)
    assert all((o >= 0).all() for o in anchor.omega.values())
    assert any(o.sum() > 0 for o in anchor.omega.values())
    at_anchor = GEFLoss(net, settings, anchor)
    no_reg = GEFLoss(net, dataclasses.replace(settings, regulariser=False), None)
    gen = torch.Generator().manual_seed
    torch.testing.assert_close(at_anchor(_batch(), gen(1)), no_reg(_batch(), gen(1)))
    assert at_anchor.last_terms["regulariser"] == 0.0
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05)
    at_anchor(_batch(), gen(1))
    assert at_anchor.last_terms["regulariser"] > 0.0


def test_calibration_scans_every_step_and_keeps_the_best():
    torch.manual_seed(0)
    net = SinglePassNet(singlepass_preset("tiny", width=8))
    rng = np.random.default_rng(0)
    clean = rng.random((24, 24, 3), dtype=np.float32)
    pairs = [(np.clip(clean + 0.05, 0, 1).astype(np.float32), clean)]
    result = calibrate(net, pairs, "custom", steps=range(0, 51, 10))
    assert sorted(result.scores) == [0, 10, 20, 30, 40, 50]
    assert result.scores[result.best] == max(result.scores.values())
    assert Calibration("x", {3: 1.0, 1: 1.0, 2: 0.5}, 0.0).best == 1  # ties: smaller t


def test_a_pretrained_file_seeds_a_network_with_adaptors_but_nothing_else(tmp_path,
                                                                         clean_folder):
    config = _config(clean_folder)
    plain = new_net(config)
    path = tmp_path / "p.safetensors"
    save_singlepass(path, plain, tasks={"noise": 4})
    with_adaptors = new_net(config, FIVE, path)
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(with_adaptors.state_dict()[name], value)
    wider = load_config("singlepass_cpu", [*SP_FAST, "singlepass.overrides.width=12",
                                           f'data.clean=["{clean_folder}"]'])
    with pytest.raises(WeightsError, match="does not fit"):
        new_net(wider, (), path)


@pytest.mark.slow
def test_pretrain_finetune_export_restore_and_resume(tmp_path, clean_folder):
    pre = tmp_path / "pre"
    assert train_main(["singlepass", "pretrain", "--run-dir", str(pre), "--iterations", "3",
                       "--quiet", "--clean", str(clean_folder), *_sets()]) == 0
    pretrained = pre / "pretrained.safetensors"
    assert read_singlepass_info(pretrained).training["objective"] == "tmddp"
    ft = tmp_path / "ft"
    args = ["singlepass", "finetune", "--task", "desnow", "--run-dir", str(ft), "--init",
            str(pretrained), "--quiet", "--clean", str(clean_folder),
            *_sets("singlepass.gen_probability=1.0", "loop.validate_every=4")]
    assert train_main([*args, "--iterations", "2"]) == 0
    anchor_bytes = (ft / ANCHOR_NAME).read_bytes()
    assert train_main([*args, "--iterations", "4"]) == 0  # resumed, trained further
    assert (ft / ANCHOR_NAME).read_bytes() == anchor_bytes  # same theta_0 and Omega
    info = read_singlepass_info(ft / "desnow.safetensors")
    assert info.tasks == {"desnow": 15} and info.training["steps"] == 4
    assert "GEF" in info.training["objective"]
    assert (ft / "samples" / "step_0000004.png").is_file()
    exported = tmp_path / "exported.safetensors"
    assert train_main(["export", "--run-dir", str(ft), "-o", str(exported)]) == 0
    out = tmp_path / "out"
    assert restore_main([str(clean_folder / "coffee.png"), "-o", str(out), "--engine",
                         "single-pass", "--model", str(exported), "--task", "desnow",
                         "-q"]) == 0
    restored = read_image(out / "coffee.png").rgb
    assert restored.shape == read_image(clean_folder / "coffee.png").rgb.shape
    assert np.isfinite(restored).all()


@pytest.mark.slow
def test_multitask_then_reload_is_bit_identical_and_reruns_skip_done_steps(tmp_path,
                                                                          clean_folder,
                                                                          capsys):
    run_dir = tmp_path / "mt"
    args = ["singlepass", "multitask", "--run-dir", str(run_dir), "--tasks",
            "motion-deblur,desnow", "--step-iterations", "2", "--quiet", "--plain-l1",
            "--clean", str(clean_folder), *_sets()]
    assert train_main(args) == 0
    assert (run_dir / "step1-desnow" / "step.safetensors").is_file()
    assert (run_dir / "step2-motion-deblur" / "step.safetensors").is_file()
    final = run_dir / "singlepass.safetensors"
    net, info = load_singlepass(final)
    assert info.tasks == {"desnow": 15, "motion-deblur": 50}
    assert net.adaptors is not None and float(net.adaptors[0].scale.detach()) != 0.0  # adaptors trained
    x = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    again = tmp_path / "again.safetensors"
    save_singlepass(again, net, tasks=info.tasks)
    reloaded, _ = load_singlepass(again)
    assert torch.equal(net.restore(x, 15), reloaded.restore(x, 15))
    capsys.readouterr()
    assert train_main(args) == 0
    assert capsys.readouterr().out.count("already done") == 2


@pytest.mark.slow
def test_continue_trains_every_task_of_a_multitask_file_and_refuses_what_it_lacks(
        tmp_path, clean_folder, capsys):
    first = tmp_path / "mt"
    assert train_main(["singlepass", "multitask", "--run-dir", str(first), "--tasks",
                       "motion-deblur,desnow", "--step-iterations", "2", "--quiet",
                       "--clean", str(clean_folder), *_sets()]) == 0
    start = first / "singlepass.safetensors"
    more = tmp_path / "more"
    args = ["singlepass", "continue", "--init", str(start), "--run-dir", str(more), "--tasks",
            "motion-deblur,desnow", "--iterations", "3", "--quiet", "--clean",
            str(clean_folder), *_sets()]
    assert train_main(args) == 0
    before, _ = load_singlepass(start)
    after, info = load_singlepass(more / "singlepass.safetensors")
    assert info.tasks == {"desnow": 15, "motion-deblur": 50}
    changed = [name for name, value in after.state_dict().items()
               if not torch.equal(value, before.state_dict()[name])]
    assert any(name.startswith("adaptors.") for name in changed)  # every task's adaptor trains
    assert any(not name.startswith("adaptors.") for name in changed)
    capsys.readouterr()
    lacking = ["singlepass", "continue", "--init", str(start), "--run-dir",
               str(tmp_path / "x"), "--tasks", "motion-deblur,raindrop", "--iterations", "1",
               "--quiet", "--clean", str(clean_folder), *_sets()]
    assert train_main(lacking) == 2
    assert "raindrop" in capsys.readouterr().err
    no_init = ["singlepass", "continue", "--run-dir", str(tmp_path / "y"), "--iterations",
               "1", "--quiet", "--clean", str(clean_folder), *_sets()]
    assert train_main(no_init) == 2
    assert "--init" in capsys.readouterr().err


def test_calibrate_command_writes_its_scan(tmp_path, clean_folder):
    torch.manual_seed(0)
    model = tmp_path / "m.safetensors"
    save_singlepass(model, SinglePassNet(singlepass_preset("tiny", width=8)),
                    tasks={"noise": 4})
    out = tmp_path / "cal.json"
    assert train_main(["singlepass", "calibrate", "--model", str(model), "--task", "desnow",
                       "--clean", str(clean_folder), "--size", "32", "--max-images", "2",
                       "-o", str(out)]) == 0
    scan = json.loads(out.read_text())
    assert len(scan["psnr_by_t"]) == 51 and 0 <= scan["t_mat"] <= 50
    assert train_main(["singlepass", "calibrate", "--model", str(model), "--task", "my-task",
                       "--clean", str(clean_folder)]) == 2  # no synthetic data, no folders


def test_unknown_orthogonality_mode_is_a_config_error(clean_folder):
    with pytest.raises(ConfigError, match="orthogonality"):
        _config(clean_folder, 'singlepass.orthogonality="sometimes"')



def test_continue_trains_in_bf16_on_a_cpu_with_native_bf16(tmp_path, clean_folder):
    """`loop.cpu_bf16` (channels-last images, bf16 autocast) on the single-pass step, whose
    batch also holds per-image time steps (not images): it trains and the weights stay
    finite. (It failed with "required rank 4 tensor to use channels_last format".)"""
    from dtpm_core.backends.device import cpu_has_native_bf16

    if not cpu_has_native_bf16():
        pytest.skip("this CPU has neither AMX nor AVX512-BF16 (loop.cpu_bf16 is refused)")
    first = tmp_path / "mt"
    assert train_main(["singlepass", "multitask", "--run-dir", str(first), "--tasks", "desnow",
                       "--step-iterations", "1", "--quiet", "--clean", str(clean_folder),
                       *_sets()]) == 0
    start = first / "singlepass.safetensors"
    more = tmp_path / "bf16"
    assert train_main(["singlepass", "continue", "--init", str(start), "--run-dir", str(more),
                       "--tasks", "desnow", "--iterations", "2", "--quiet", "--clean",
                       str(clean_folder), *_sets("loop.cpu_bf16=true")]) == 0
    before, _ = load_singlepass(start)
    after, _ = load_singlepass(more / "singlepass.safetensors")
    assert all(torch.isfinite(v).all() for v in after.state_dict().values())
    assert any(not torch.equal(v, before.state_dict()[k]) for k, v in after.state_dict().items())


def test_fine_tuning_refuses_loop_compile_at_once(tmp_path, clean_folder):
    """The GEF objective cannot be compiled (gradients inside the loss): a clear error before
    anything trains, not a failure after minutes of compiling."""
    from dtpm_core.errors import ConfigError

    config = _config(clean_folder, "loop.compile=true")
    with pytest.raises(ConfigError, match="loop.compile.*set loop.compile = false"):
        build_finetune(config, tmp_path / "run", ["desnow"], None, "sp.safetensors")
    assert not (tmp_path / "run").exists()
