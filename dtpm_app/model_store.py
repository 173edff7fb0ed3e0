"""Installing a model file into the user's model folder ("Add model...").

The file is verified first (`dtpm_core.modelfiles.weights` checks kind, version and the tensors'
sha256), then copied and the folder's manifest updated, both atomically, so an interrupted import
never leaves a half-written model or manifest behind. No Qt here: the app runs it in a worker
thread.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dtpm_core.errors import WeightsError
from dtpm_core.evaluation.model_scores import HeldOutScores, held_out_scores
from dtpm_core.files.atomic import atomic_writer, write_text_atomic
from dtpm_core.modelfiles import verified
from dtpm_core.modelfiles.catalog import MANIFEST_NAME, user_models_dir
from dtpm_core.modelfiles.verified import base_identities


class ModelInstallError(WeightsError):
    """A model file cannot be installed (not a DTPM file, or made for another base)."""


@dataclass(frozen=True)
class InstalledModel:
    kind: str  # "base", "adapter" or "singlepass" (the single-pass engine's network)
    task: str  # "" for a base
    display_name: str
    path: Path  # the installed copy


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug or "model"


def _atomic_copy(source: Path, target: Path) -> None:
    with atomic_writer(target) as out, source.open("rb") as src:
        shutil.copyfileobj(src, out, length=1 << 20)


def _write_manifest(folder: Path, data: dict) -> None:
    write_text_atomic(folder / MANIFEST_NAME, json.dumps(data, indent=2))


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST_NAME
    if not path.is_file():
        return {"adapters": []}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelInstallError(f"the model manifest {path} is damaged ({exc}); fix or delete "
                                "it, then add the models again") from exc
    if not isinstance(data, dict) or not isinstance(data.get("adapters", []), list):
        raise ModelInstallError(f"the model manifest {path} is damaged; fix or delete it")
    data.setdefault("adapters", [])
    return data


@dataclass(frozen=True)
class InstallReport:
    installed: tuple[InstalledModel, ...]
    failed: tuple[tuple[str, str], ...]  # (file, reason)


def _inspect(source: Path) -> tuple[str, Any]:
    """("adapter", AdapterInfo), ("base", BaseInfo) or ("singlepass", SinglePassInfo);
    WeightsError for anything else."""
    from dtpm_core.modelfiles.verified import read_adapter_info, read_base_info
    from dtpm_core.singlepass.info import read_singlepass_info

    try:
        return "adapter", read_adapter_info(source)
    except WeightsError as adapter_error:
        for kind, read in (("base", read_base_info),
                           ("singlepass", read_singlepass_info)):
            try:
                return kind, read(source)
            except WeightsError:
                continue
        raise adapter_error from None


def _install(source: Path, folder: Path, filename: str, update: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(folder)
    target = folder / filename
    if not (target.exists() and target.samefile(source)):
        _atomic_copy(source, target)
    if "base" in update or "singlepass" in update:
        manifest.update(update)
    else:
        entries = [e for e in manifest["adapters"]
                   if not (isinstance(e, dict) and e.get("task") == update["task"])]
        entries.append(update)
        manifest["adapters"] = entries
    _write_manifest(folder, manifest)
    return target


def install_models(sources: list[str | Path], current_base: frozenset[str] = frozenset(),
                   folder: Path | None = None) -> InstallReport:
    """Verify .safetensors model files and install them into the user model folder.

    Base files are installed before adapters, so a base and its adapters can be added in one
    go. An adapter trained on another base than the one it would run with is refused (it
    could never be loaded). A single-pass file replaces the installed one.
    One bad file does not stop the others.

    Args:
        sources: adapter files (`dtpm-train export`), base files and/or single-pass files.
        current_base: the hashes an adapter may name for the base in use
            (`BaseInfo.identities`); empty when none is loaded.
        folder: the model folder (default: `dtpm_core.modelfiles.catalog.user_models_dir()`).
    """
    folder = folder or user_models_dir()
    installed: list[InstalledModel] = []
    failed: list[tuple[str, str]] = []
    inspected = []
    for source in map(Path, sources):
        try:
            inspected.append((source, *_inspect(source)))
        except WeightsError as exc:
            failed.append((str(source), str(exc)))
    accepted = current_base
    for source, kind, info in sorted(inspected, key=lambda item: item[1] == "adapter"):
        try:
            if kind == "base":
                filename = f"base-{info.sha256[:12]}.safetensors"
                target = _install(source, folder, filename, {"base": filename})
                accepted = info.identities
                installed.append(InstalledModel("base", "", "Base model", target))
                continue
            if kind == "singlepass":
                filename = f"singlepass-{info.sha256[:12]}.safetensors"
                target = _install(source, folder, filename, {"singlepass": filename})
                installed.append(InstalledModel("singlepass", "",
                                                "Single-pass model", target))
                continue
            task = info.task
            name = info.display_name or task
            if accepted and info.base_sha256 not in accepted:
                raise ModelInstallError(
                    f"{source} ({name}) was trained on base model "
                    f"{info.base_sha256[:12]}, but the installed base is "
                    f"{' / '.join(sorted(h[:12] for h in accepted))}; add the base it was "
                    "trained with as well, or retrain "
                    "the adapter on this base")
            filename = f"{_slug(task)}.safetensors"
            target = _install(source, folder, filename,
                              {"task": task, "display_name": name, "file": filename})
            installed.append(InstalledModel("adapter", task, name, target))
        except (WeightsError, OSError) as exc:
            failed.append((str(source), str(exc)))
    return InstallReport(tuple(installed), tuple(failed))


def header_metadata(path: Path | None) -> dict[str, str]:
    """The metadata of a safetensors file, read from its header alone (empty when unreadable):
    cheap enough for the GUI thread at start-up. Not a verification: loading the model checks
    the file and reports what is wrong with it."""
    if path is None:
        return {}
    try:
        return verified.header_metadata(path)
    except WeightsError:
        return {}


def stored_scores(metadata: dict[str, str]) -> HeldOutScores | None:
    """The held-out scores an adapter's metadata stores (`dtpm-train export --metrics`)."""
    try:
        metrics = json.loads(metadata.get("metrics") or "{}")
    except ValueError:
        return None
    return held_out_scores(metrics if isinstance(metrics, dict) else None)


def scores_of_fitting_adapters(base: Path | None, adapters: dict) -> dict[str, HeldOutScores]:
    """Task -> stored held-out scores, for the adapters (a Catalog's) made for `base`."""
    accepted = base_identities(header_metadata(base))
    scores = {}
    for task, entry in adapters.items():
        metadata = header_metadata(entry.path)
        if metadata.get("base_sha256") in accepted:
            score = stored_scores(metadata)
            if score is not None:
                scores[task] = score
    return scores
