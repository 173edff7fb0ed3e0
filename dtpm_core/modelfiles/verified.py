"""A weight file read and verified without building anything (DESIGN 4): the safetensors
header, the DTPM metadata and both hashes, checked on the file's own bytes. No torch here:
the OpenVINO backend, the app's model list and `read_*_info` use this alone; `weights`
(torch) builds the networks from a file verified here.

Every file carries its model config as JSON, a sha256 of its tensors (`content_sha256`,
which identifies the model: adapters name their base by it) and a sha256 of its metadata
(`metadata_sha256`: config, task, base hash, Stage II options, calibration, task table, ...
everything that changes results, and content_sha256, so it covers the tensors too), both
checked on every read. A file without them (written before `metadata_sha256` existed, or with
it deleted) is refused unless the user allows unverified files
(`dtpm_core.modelfiles.unverified`). Pickles are never read.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ModelConfig, Stage2Options
from ..diffusion.calibration import Calibration
from ..errors import BaseMismatchError, ConfigError, WeightsError
from .unverified import no_checksum_message, unverified_allowed

FORMAT_VERSION = 1
KIND_BASE = "dtpm-base"
KIND_ADAPTER = "dtpm-adapter"
KIND_SINGLEPASS = "dtpm-singlepass"
KIND_NAMES = {KIND_BASE: "base model", KIND_ADAPTER: "adapter",
              KIND_SINGLEPASS: "single-pass model"}
"""What each kind of weight file is called in messages."""
METADATA_HASH_KEY = "metadata_sha256"
STORED_FROM_KEY = "stored_from_sha256"
"""In a base file stored again in another precision: the content hash of the file it was
stored from (the hash its adapters name)."""

DTYPES = {"F64": ("torch.float64", 8), "F32": ("torch.float32", 4),
          "F16": ("torch.float16", 2), "BF16": ("torch.bfloat16", 2),
          "I64": ("torch.int64", 8), "I32": ("torch.int32", 4), "I16": ("torch.int16", 2),
          "I8": ("torch.int8", 1), "U8": ("torch.uint8", 1), "BOOL": ("torch.bool", 1)}
"""safetensors dtype -> (the dtype's name in `content_sha256`, bytes per element). The hash
names dtypes as torch prints them: it was defined on torch tensors, and files keep it."""


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a file: where its bytes are and what they are."""

    name: str
    dtype: str  # the safetensors name, a key of DTYPES
    shape: tuple[int, ...]
    data: memoryview


def tensor_digest(entries: Iterable[tuple[str, str, tuple[int, ...], bytes | memoryview]]
                  ) -> str:
    """`content_sha256`: sha256 over (name, dtype name, shape, little-endian bytes) of every
    tensor, in name order; dtype names as DTYPES gives them. It identifies a model
    independently of file layout and metadata. The one definition: `weights.content_sha256`
    feeds it torch tensors, `read_verified` a file's bytes."""
    digest = hashlib.sha256()
    for name, dtype, shape, data in sorted(entries, key=lambda entry: entry[0]):
        digest.update(f"{name}|{dtype}|{tuple(shape)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def metadata_sha256(metadata: dict[str, str]) -> str:
    """sha256 over every metadata entry (content_sha256 included, so the metadata is bound to
    its tensors) except this hash itself, in key order."""
    covered = {k: v for k, v in metadata.items() if k != METADATA_HASH_KEY}
    return hashlib.sha256(json.dumps(covered, sort_keys=True).encode()).hexdigest()


def seal_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """`metadata` with its `metadata_sha256` added (every save function calls this last)."""
    return {**metadata, METADATA_HASH_KEY: metadata_sha256(metadata)}


@dataclass(frozen=True)
class VerifiedFile:
    """A DTPM safetensors file whose header, tensors' layout and hashes checked out.
    `data` is the whole file; `metadata` has `content_sha256` (computed, for a file let
    through unverified)."""

    path: Path
    data: bytes
    metadata: dict[str, str]
    tensors: tuple[TensorEntry, ...]


MAX_HEADER_BYTES = 16 << 20
"""The largest safetensors header read without verifying a file (a DTPM header is a few kB;
a larger length field means a damaged file or another format)."""


def header_metadata(path: Path | str) -> dict[str, str]:
    """The `__metadata__` of a safetensors file, read from its header alone: no hashes are
    checked (`read_verified` does that), so this is cheap enough for a GUI thread. Raises
    WeightsError for a missing, unreadable or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"model file not found: {path}")
    try:
        with path.open("rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            if not 0 < header_len <= MAX_HEADER_BYTES:
                raise ValueError(f"header length {header_len} out of range")
            header = json.loads(handle.read(header_len).decode("utf-8"))
    except OSError as exc:
        raise WeightsError(f"could not read {path}: {exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file (damaged or of "
                           f"another format): {exc}") from exc
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    return dict(metadata) if isinstance(metadata, dict) else {}


def file_kind(path: Path | str) -> str:
    """The `kind` a DTPM file's header names (KIND_BASE, KIND_ADAPTER, KIND_SINGLEPASS), read
    without verifying the file (`read_verified` does that)."""
    metadata = header_metadata(path)
    if metadata.get("format") != "dtpm":
        raise WeightsError(f"{path} is not a DTPM model (no DTPM metadata)")
    return str(metadata.get("kind", ""))


def read_verified(path: Path | str, kind: str) -> VerifiedFile:
    """Read and verify a DTPM safetensors file of the given kind (one of KIND_NAMES)."""
    path = Path(path)
    what = KIND_NAMES[kind]
    if not path.is_file():
        raise WeightsError(f"{what} file not found: {path}")
    data = path.read_bytes()
    try:
        header, tensors = _parse(data)
    except (ValueError, UnicodeDecodeError, OverflowError, TypeError, KeyError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file (damaged or of another "
                           f"format): {exc}") from exc
    metadata = header.get("__metadata__") or {}
    if metadata.get("format") != "dtpm":
        raise WeightsError(f"{path} is a safetensors file but not a DTPM model (no DTPM metadata)")
    try:
        version = int(metadata.get("format_version", "0"))
    except ValueError as exc:
        raise WeightsError(f"{path}: bad format_version {metadata.get('format_version')!r}") \
            from exc
    if version > FORMAT_VERSION:
        raise WeightsError(f"{path} was written by a newer DTPM Studio (format {version}); "
                           f"this version reads format {FORMAT_VERSION}: please update")
    found = metadata.get("kind")
    if found != kind:
        found_name = KIND_NAMES.get(found, "unknown kind of")
        raise WeightsError(f"{path} is a DTPM {found_name} file ({found!r}), not {_a(what)} "
                           f"(expected {_a(what)}); check which file goes to --base, --adapter "
                           "or --model")
    metadata = dict(metadata)
    _verify(path, what, tensors, metadata)
    return VerifiedFile(path, data, metadata, tensors)


def _parse(data: bytes) -> tuple[dict[str, Any], tuple[TensorEntry, ...]]:
    """The header and tensor entries of a safetensors file, with the checks the format's own
    reader makes: a JSON header, known dtypes, byte ranges that match the shapes and tile the
    data section without gaps or overlaps."""
    if len(data) < 8:
        raise ValueError(f"{len(data)} bytes, too short for a header")
    header_len = int.from_bytes(data[:8], "little")
    if header_len > len(data) - 8:
        raise ValueError(f"header of {header_len} bytes in a file of {len(data)}")
    header = json.loads(data[8:8 + header_len].decode("utf-8"))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    body = memoryview(data)[8 + header_len:]
    entries, spans = [], []
    for name, record in header.items():
        if name == "__metadata__":
            if not isinstance(record, dict) or not all(
                    isinstance(v, str) for v in record.values()):
                raise ValueError("__metadata__ must map names to strings")
            continue
        dtype, shape, (begin, end) = record["dtype"], record["shape"], record["data_offsets"]
        if dtype not in DTYPES:
            raise ValueError(f"tensor {name} has the unknown dtype {dtype!r}")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ValueError(f"tensor {name} has the shape {shape!r}")
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end):
            raise ValueError(f"tensor {name} has the byte range {begin!r}..{end!r}")
        if end - begin != math.prod(shape) * DTYPES[dtype][1]:
            raise ValueError(f"tensor {name}: {end - begin} bytes for shape {shape} {dtype}")
        spans.append((begin, end, name))
        entries.append(TensorEntry(name, dtype, tuple(shape), body[begin:end]))
    position = 0
    for begin, end, name in sorted(spans):
        if begin != position:
            raise ValueError(f"tensor {name} starts at byte {begin}, expected {position} "
                             "(a gap or an overlap)")
        position = end
    if position != len(body):
        raise ValueError(f"the tensors cover {position} of {len(body)} data bytes")
    return header, tuple(entries)


def _verify(path: Path, what: str, tensors: tuple[TensorEntry, ...],
            metadata: dict[str, str]) -> None:
    """Check the tensors against content_sha256 and the metadata against metadata_sha256 (which
    covers content_sha256, so both together cover everything); a wrong hash is refused always,
    a missing one unless the user allows unverified files. A file let through without
    content_sha256 gets the computed one: it is the model's identity (adapters name their
    base by it)."""
    actual = tensor_digest((t.name, DTYPES[t.dtype][0], t.shape, t.data) for t in tensors)
    stated = metadata.get("content_sha256")
    if stated is not None and stated != actual:
        raise WeightsError(f"{path} is corrupted: its tensors do not match the sha256 recorded "
                           "when it was saved; download or export it again")
    recorded = metadata.get(METADATA_HASH_KEY)
    if recorded is not None and recorded != metadata_sha256(metadata):
        raise WeightsError(f"{path} is corrupted or was edited: its metadata (model config, "
                           "task, base model hash, calibration, ...) do not match the sha256 "
                           "recorded when it was saved; download or export it again")
    missing = [key for key, value in (("content_sha256", stated), (METADATA_HASH_KEY, recorded))
               if value is None]
    if missing and not unverified_allowed():
        raise WeightsError(no_checksum_message(path, what + " file", " and ".join(missing)))
    metadata.setdefault("content_sha256", actual)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def json_field(metadata: dict[str, str], key: str) -> dict[str, Any]:
    """A JSON object stored under `key`; {} when absent or not an object."""
    try:
        value = json.loads(metadata.get(key, "{}"))
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _config_of(path: Path | str, metadata: dict[str, str]) -> ModelConfig:
    try:
        return ModelConfig.from_json(metadata["config"])
    except (KeyError, ConfigError) as exc:
        raise WeightsError(f"{path}: its model config cannot be read: {exc}") from exc


def _calibration_of(path: Path | str, metadata: dict[str, str]) -> Calibration:
    try:
        return Calibration.from_metadata(metadata, str(path))
    except ConfigError as exc:
        raise WeightsError(str(exc)) from exc


@dataclass(frozen=True)
class BaseInfo:
    """What a base file says about itself."""

    path: Path | None
    sha256: str
    config: ModelConfig
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration = field(default_factory=Calibration)
    stored_from: str = ""  # STORED_FROM_KEY: the file this one is a copy of, in another storage

    @property
    def identities(self) -> frozenset[str]:
        """The base hashes an adapter made for this base may name (`base_identities`)."""
        return frozenset(h for h in (self.sha256, self.stored_from) if h)


@dataclass(frozen=True)
class AdapterInfo:
    """What an adapter file says about itself."""

    path: Path | None
    sha256: str
    task: str
    display_name: str
    base_sha256: str
    config: ModelConfig
    stage2: Stage2Options
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    calibration: Calibration = field(default_factory=Calibration)


def base_identities(metadata: dict[str, str]) -> frozenset[str]:
    """The base hashes an adapter may name for the base file with this metadata: its content
    hash and, for a copy stored again in another precision (`weights.store_again`, e.g. fp16),
    the content hash of the file it was stored from, which the adapters trained on that file
    name. Empty for metadata without a hash."""
    return frozenset(h for h in (metadata.get("content_sha256", ""),
                                 metadata.get(STORED_FROM_KEY, "")) if h)


def base_info(file: VerifiedFile) -> BaseInfo:
    metadata = file.metadata
    return BaseInfo(path=file.path, sha256=metadata["content_sha256"],
                    config=_config_of(file.path, metadata),
                    training=json_field(metadata, "training"),
                    metrics=json_field(metadata, "metrics"),
                    calibration=_calibration_of(file.path, metadata),
                    stored_from=metadata.get(STORED_FROM_KEY, ""))


def adapter_info(file: VerifiedFile) -> AdapterInfo:
    path, metadata = file.path, file.metadata
    try:
        stage2 = Stage2Options(**json_field(metadata, "stage2"))
    except (TypeError, ConfigError) as exc:
        raise WeightsError(f"{path}: its Stage II options cannot be read: {exc}") from exc
    return AdapterInfo(path=path, sha256=metadata["content_sha256"],
                       task=metadata.get("task", "unknown"),
                       display_name=metadata.get("display_name", metadata.get("task", "")),
                       base_sha256=metadata.get("base_sha256", ""),
                       config=_config_of(path, metadata), stage2=stage2,
                       training=json_field(metadata, "training"),
                       metrics=json_field(metadata, "metrics"),
                       calibration=_calibration_of(path, metadata))


def read_base_info(path: Path | str) -> BaseInfo:
    """Read and verify a base file's metadata (the tensors' hash is checked too)."""
    return base_info(read_verified(path, KIND_BASE))


def read_adapter_info(path: Path | str) -> AdapterInfo:
    """Read and verify an adapter file's metadata (the tensors' hash is checked too)."""
    return adapter_info(read_verified(path, KIND_ADAPTER))


def check_base_match(adapter: AdapterInfo, base: BaseInfo) -> None:
    """Refuse an adapter trained on another base (a base stored again in another precision
    keeps the adapters of the file it was stored from: `base_identities`)."""
    if adapter.base_sha256 not in base.identities:
        raise BaseMismatchError(
            f"{adapter.path} ({adapter.display_name}) was trained on base model "
            f"{adapter.base_sha256[:12]}, but the loaded base is {base.sha256[:12]} "
            f"({base.path}); load the base it was trained with, or retrain the adapter on this "
            "base")
