"""Where installed models live and how a name or path on the command line finds one.

Two places hold models: the bundled folder (`resources/models/`, with a `manifest.json`
naming the base and the task adapters) and the user's folder from platformdirs, where the
app's "Add model..." and `dtpm-train export` put files. A user file wins over a bundled one.
An adapter entry may carry the K and texture strength measured best for it
(`dtpm_core.modelfiles.recommended`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_data_dir

from ..errors import WeightsError
from .recommended import RECOMMENDED_KEY, Recommendation, parse_recommendation

APP_NAME = "DTPM Studio"
MANIFEST_NAME = "manifest.json"


def resources_dir() -> Path:
    """The project's `resources/` folder (DTPM_RESOURCES overrides it, e.g. in bundles)."""
    override = os.environ.get("DTPM_RESOURCES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "resources"  # <root>/dtpm_core/modelfiles/


def bundled_models_dir() -> Path:
    return resources_dir() / "models"


def user_models_dir() -> Path:
    """The per-user model folder (DTPM_USER_MODELS overrides it, e.g. in tests)."""
    override = os.environ.get("DTPM_USER_MODELS")
    if override:
        return Path(override)
    return Path(user_data_dir(APP_NAME, appauthor=False)) / "models"


@dataclass(frozen=True)
class ModelEntry:
    """One adapter known by name: its task name, display name and file, and the K and
    texture strength measured best for it (None: none measured, the global defaults hold)."""

    task: str
    display_name: str
    path: Path
    recommended: Recommendation | None = None


@dataclass(frozen=True)
class Catalog:
    """The installed base model (if any) and the adapters known by task name."""

    base: Path | None
    adapters: dict[str, ModelEntry]
    singlepass: Path | None = None  # the single-pass engine's multi-task network (DESIGN 6)


def _read_manifest(folder: Path) -> tuple[Path | None, dict[str, ModelEntry], Path | None]:
    """(base, adapters by task, single-pass network) named by the folder's manifest."""
    manifest = folder / MANIFEST_NAME
    if not manifest.is_file():
        return None, {}, None
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        base = folder / data["base"] if data.get("base") else None
        singlepass = folder / data["singlepass"] if data.get("singlepass") else None
        adapters = {}
        for item in data.get("adapters", []):
            recommended = None
            if RECOMMENDED_KEY in item:
                try:
                    recommended = parse_recommendation(item[RECOMMENDED_KEY])
                except ValueError as exc:
                    raise ValueError(f"adapter {item['task']!r}: {exc}") from None
            adapters[item["task"]] = ModelEntry(item["task"], item.get("display_name",
                                                                       item["task"]),
                                                folder / item["file"], recommended)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"the model manifest {manifest} is damaged: {exc}") from exc
    return base, adapters, singlepass


def load_catalog() -> Catalog:
    """Bundled models, then the user's folder on top."""
    base, adapters, singlepass = _read_manifest(bundled_models_dir())
    user_base, user_adapters, user_singlepass = _read_manifest(user_models_dir())
    adapters.update(user_adapters)
    return Catalog(base=user_base or base, adapters=adapters,
                   singlepass=user_singlepass or singlepass)


def entry_for_adapter(path: str | Path, catalog: Catalog) -> ModelEntry | None:
    """The catalog entry of an adapter file (by its resolved path), None for a file the
    catalog does not name (its recommendation, if any, is then unknown)."""
    wanted = Path(path).resolve()
    for entry in catalog.adapters.values():
        if entry.path.resolve() == wanted:
            return entry
    return None


def folder_catalog(folder: Path) -> Catalog:
    """The models that one folder's manifest lists (no other folder's)."""
    base, adapters, singlepass = _read_manifest(folder)
    return Catalog(base=base, adapters=adapters, singlepass=singlepass)


def resolve_singlepass(path: str | Path | None, catalog: Catalog | None = None) -> Path:
    """The single-pass network to load: the given path, else the installed one."""
    return _given_or_installed(
        path, lambda c: c.singlepass, catalog,
        "no single-pass model is installed: pass --model PATH to a single-pass "
        "`.safetensors` (made with `dtpm-train singlepass ...`)")


def resolve_base(path: str | Path | None, catalog: Catalog | None = None) -> Path:
    """The base file to load: the given path, else the installed default."""
    return _given_or_installed(
        path, lambda c: c.base, catalog,
        "no base model is installed: pass --base PATH to a base .safetensors file (made with "
        f"`dtpm-train export`), or install models into {user_models_dir()}")


def _given_or_installed(path: str | Path | None, installed: Callable[[Catalog], Path | None],
                        catalog: Catalog | None, missing: str) -> Path:
    if path is not None:
        return Path(path)
    found = installed(catalog or load_catalog())
    if found is None:
        raise WeightsError(missing)
    return found


def resolve_adapter(name_or_path: str, catalog: Catalog | None = None) -> Path:
    """An adapter file from a task name (e.g. "motion-deblur") or a path.

    A bare word that is an installed task id is that task, even when the current folder holds
    something of that name; it is a path when it ends in .safetensors, holds a folder
    separator (./motion-deblur) or names an existing file and no task. A folder is refused."""
    candidate = Path(name_or_path)
    is_bare_word = candidate.name == name_or_path and candidate.suffix != ".safetensors"
    if is_bare_word:
        catalog = catalog or load_catalog()
        if name_or_path in catalog.adapters:
            return catalog.adapters[name_or_path].path
    if candidate.is_dir():
        raise WeightsError(f"the adapter {name_or_path!r} is a folder, not a .safetensors model "
                           "file: give the file inside it, or an installed task name")
    if not is_bare_word or candidate.is_file():
        return candidate
    catalog = catalog or load_catalog()
    known = ", ".join(sorted(catalog.adapters)) or "none installed"
    raise WeightsError(f"unknown adapter {name_or_path!r}: give a .safetensors path or one of "
                       f"the installed task names ({known})")
