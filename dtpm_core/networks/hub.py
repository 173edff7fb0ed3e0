"""Where pretrained weights come from: the torch hub checkpoint cache, filled on request.

Pretrained backbones (LPIPS's AlexNet/VGG/SqueezeNet, FID's Inception-v3, the semantic encoder's
ResNet-18) are looked up under ``torch.hub.get_dir() / "checkpoints"`` (which honours
``TORCH_HOME``), under torchvision's own file names, so that weights torchvision has already
downloaded are reused and weights fetched here are found by torchvision too.

Downloads happen only when allowed: never when ``DTPM_OFFLINE=1`` is set and never under pytest
(``PYTEST_CURRENT_TEST`` set), unless a caller passes ``allow_download=True`` explicitly.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

__all__ = [
    "downloads_allowed",
    "fetch_weights",
    "find_cached_weights",
    "torch_hub_checkpoint_dir",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_TIMEOUT_S = 30.0
# torch.hub's convention: "name-<first hex digits of the sha256>.ext" (e.g. alexnet-owt-7be5be79.pth)
_HASH_RE = re.compile(r"-([a-f0-9]{8,64})\.")
_TRUTHY = {"1", "true", "yes", "on"}


def torch_hub_checkpoint_dir() -> Path:
    """Return ``torch.hub.get_dir() / "checkpoints"`` (honours ``TORCH_HOME``); not created."""
    import torch.hub  # lazy: importing this module must stay light

    return Path(torch.hub.get_dir()) / "checkpoints"


def find_cached_weights(filename: str) -> Path | None:
    """Return the path of ``filename`` in the torch hub checkpoint dir, or None if absent."""
    path = torch_hub_checkpoint_dir() / filename
    return path if path.is_file() else None


def downloads_allowed(allow_download: bool | None = None) -> bool:
    """Resolve ``allow_download``: an explicit bool wins; None means allowed unless
    ``DTPM_OFFLINE`` is set to a true value or the code runs under pytest."""
    if allow_download is not None:
        return bool(allow_download)
    if os.environ.get("DTPM_OFFLINE", "").strip().lower() in _TRUTHY:
        return False
    return not os.environ.get("PYTEST_CURRENT_TEST")


def _filename_from_url(url: str) -> str:
    name = os.path.basename(urlparse(url).path)
    if not name:
        raise ValueError(f"cannot derive a file name from the URL {url!r}; pass filename=")
    return name


def fetch_weights(
    url: str,
    filename: str | None = None,
    *,
    allow_download: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path | None:
    """Return the cached weight file, downloading it once into the hub cache if needed.

    ``filename`` defaults to the last component of the URL's path. If the file is absent and
    downloads are allowed (see :func:`downloads_allowed`), it is streamed with ``requests`` to a
    ``.partial`` file in the cache directory and renamed into place only when complete (and,
    for torch-hub style names ``name-<sha256 prefix>.ext``, only when the hash matches).
    ``progress(bytes_done, bytes_total)`` is called after each chunk (``bytes_total`` is 0 when
    the server does not say); without it, a progress bar is drawn on stderr. Returns None if
    downloads are not allowed or the download fails.
    """
    name = filename or _filename_from_url(url)
    cached = find_cached_weights(name)
    if cached is not None:
        return cached
    if not downloads_allowed(allow_download):
        return None

    import requests  # lazy: only needed for an actual download

    target_dir = torch_hub_checkpoint_dir()
    partial: Path | None = None
    bar = None
    if progress is None:
        bar = _ConsoleProgress(f"downloading {name}")
        progress = bar
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        resp = requests.get(url, stream=True, timeout=_TIMEOUT_S)
        try:
            resp.raise_for_status()
            try:
                total = int(resp.headers.get("content-length") or 0)
            except (TypeError, ValueError):
                total = 0
            # with a content encoding, content-length counts compressed bytes: don't compare
            encoding = (resp.headers.get("content-encoding") or "identity").lower()
            if encoding != "identity":
                total = 0
            fd, tmp = tempfile.mkstemp(prefix=f"{name}.", suffix=".partial", dir=target_dir)
            partial = Path(tmp)
            digest = hashlib.sha256()
            done = 0
            with os.fdopen(fd, "wb") as fh:
                for chunk in resp.iter_content(chunk_size=_CHUNK):
                    if not chunk:
                        continue
                    fh.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        finally:
            resp.close()
        if total and done != total:
            log.warning("download of %s stopped at %d of %d bytes", url, done, total)
            return None
        match = _HASH_RE.search(name)
        if match and not digest.hexdigest().startswith(match.group(1)):
            log.warning("download of %s does not match the hash in its name %s", url, name)
            return None
        final = target_dir / name
        os.replace(partial, final)
        partial = None
        return final
    except (requests.RequestException, OSError) as exc:
        log.warning("could not download %s: %s", url, exc)
        return None
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
        if bar is not None:
            bar.close()


class _ConsoleProgress:
    """A tqdm bar on stderr fed with (bytes_done, bytes_total), created at the first chunk."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total or None, unit="B", unit_scale=True,
                            desc=self.description, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
