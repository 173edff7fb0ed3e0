"""The DTPM texture strength (issue 13): how much of the generated texture layer the result
keeps. `dtpm_core.engines.dtpm_restorer.Restorer` computes

    result = y_eps + strength * x0_hat

(0 = the initial prediction alone, 1 = as trained, up to MAX_STRENGTH; the paper's alpha).
The app only chooses the number: `checked_strength` makes the controller's setting of it
(`Controller.set_strength`), and `strength_text` words it for labels. The single-pass engine
has no texture layer, so it has no strength either.
"""

from __future__ import annotations

from .settings import MAX_STRENGTH, STRENGTH_DECIMALS

AS_TRAINED = 1.0
"""The strength the models were trained for; labels only mention a strength that differs."""

__all__ = ["AS_TRAINED", "MAX_STRENGTH", "checked_strength", "strength_tag", "strength_text"]


def strength_text(strength: float) -> str:
    """", texture strength 0.5" to append to a label; "" at AS_TRAINED."""
    return "" if strength == AS_TRAINED else f", texture strength {strength:g}"


def strength_tag(strength: float) -> str:
    """"-strength0.5" for a file name; "" at AS_TRAINED (results of two strengths never share
    a name)."""
    return "" if strength == AS_TRAINED else f"-strength{strength:g}"


def checked_strength(strength: float) -> float:
    """The strength in steps of 0.1, as the control offers it; ValueError out of range."""
    strength = round(float(strength), STRENGTH_DECIMALS)
    if not 0.0 <= strength <= MAX_STRENGTH:
        raise ValueError(f"texture strength must be between 0 and {MAX_STRENGTH}, "
                         f"got {strength}")
    return strength
