"""Held-out scores stored in adapter files, and the step note built from them."""

import math

from dtpm_core.evaluation.model_scores import held_out_scores


def _rows(values: dict[str, list[float]]) -> dict:
    return {"eval": [{"image": f"{i}.png", "method": method, "psnr": str(v)}
                     for method, vs in values.items() for i, v in enumerate(vs)]}


def test_scores_are_per_method_means_over_images():
    scores = held_out_scores(_rows({"input": [20.0, 30.0], "initial": [21.0, 31.0],
                                    "K=1": [10.0, 12.0], "K=4": [24.0, 26.0]}))
    assert scores.images == 2
    assert (scores.input_psnr, scores.initial_psnr) == (25.0, 26.0)
    assert scores.psnr_at == {1: 11.0, 4: 25.0}


def test_step_note_warns_far_below_the_input_and_is_silent_for_unevaluated_k():
    scores = held_out_scores(_rows({"input": [25.0], "K=1": [21.9], "K=4": [22.1]}))
    level, text = scores.step_note(1)
    assert level == "warning" and "21.9 dB" in text and "25.0 dB" in text and "noise" in text
    assert scores.step_note(4)[0] == "info"  # 2.9 dB below: within the margin
    assert scores.step_note(10) == ("", "")


def test_missing_or_broken_metrics_give_no_scores():
    assert held_out_scores(None) is None
    assert held_out_scores({}) is None
    assert held_out_scores({"eval": "not rows"}) is None
    assert held_out_scores(_rows({"K=4": [20.0]})) is None  # no input row to compare with
    broken = {"eval": [{"method": "input", "psnr": "x"}, {"method": "input", "psnr": "20"},
                       {"psnr": "3"}, {"method": "K=4", "psnr": "nan"}]}
    scores = held_out_scores(broken)
    assert scores.input_psnr == 20.0 and scores.psnr_at == {} and math.isnan(scores.initial_psnr)
