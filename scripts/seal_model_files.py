"""Add the metadata checksum to DTPM model files written before it existed (issue 21).

    python scripts/seal_model_files.py resources/models/singlepass.safetensors [...]

A file is sealed only when its tensors still match the content sha256 recorded when it was
saved (so a damaged file is never blessed) and it has no metadata checksum yet; its tensors and
every metadata value are kept as they are, only `metadata_sha256` is added. The file is then
read back through the loader that the app uses and its tensors compared, bit for bit, with
the original's. Review the metadata of a file before sealing it: the seal vouches for it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save_bytes

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dtpm_core.files.atomic import write_bytes_atomic  # noqa: E402
from dtpm_core.modelfiles.verified import METADATA_HASH_KEY, seal_metadata  # noqa: E402
from dtpm_core.modelfiles.weights import content_sha256  # noqa: E402


def read_raw(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})  # noqa: SIM118


def _bytes(tensor: torch.Tensor) -> bytes:
    return tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def seal(path: Path) -> str:
    """Seal one file; returns what was done, for the log."""
    tensors, metadata = read_raw(path)
    if metadata.get("format") != "dtpm":
        raise SystemExit(f"{path}: not a DTPM model file")
    if METADATA_HASH_KEY in metadata:
        return f"{path}: already carries {METADATA_HASH_KEY}, left as it is"
    sha = content_sha256(tensors)
    if metadata.get("content_sha256") != sha:
        raise SystemExit(f"{path}: its tensors do not match its content_sha256; not sealed")
    write_bytes_atomic(path, st_save_bytes(tensors, metadata=seal_metadata(metadata)))
    again, sealed = read_raw(path)
    same = set(again) == set(tensors) and all(
        again[k].dtype == tensors[k].dtype and again[k].shape == tensors[k].shape
        and _bytes(again[k]) == _bytes(tensors[k]) for k in tensors)
    if not same or {k: v for k, v in sealed.items() if k != METADATA_HASH_KEY} != metadata:
        raise SystemExit(f"{path}: the rewritten file differs from the original")
    return f"{path}: sealed; content_sha256 {sha} unchanged, {len(tensors)} tensors bit-identical"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    for path in parser.parse_args(argv).files:
        print(seal(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
