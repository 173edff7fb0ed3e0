"""The command line's progress bars: tqdm's where bars are drawn, and no tqdm at all in a quiet
run, which draws none (importing tqdm costs 40-80 ms of every start-up: its version lookup
loads importlib.metadata, measured with `python -X importtime`)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO


class NoBar:
    """What a quiet run gets instead of a tqdm bar: the attributes and methods the command
    line uses, doing nothing (iterating gives the items)."""

    def __init__(self, iterable: Iterable[Any] = (), total: int | None = 0) -> None:
        self._iterable, self.total, self.n = iterable, total, 0

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable)

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(iterable: Iterable[Any] | None = None, *, quiet: bool, **options: Any) -> Any:
    """tqdm(iterable, **options), or a `NoBar` where `quiet`."""
    if quiet:
        return NoBar(iterable if iterable is not None else (), options.get("total", 0))
    from tqdm import tqdm

    return tqdm(iterable, **options)


def write_line(text: str, file: TextIO | None = None) -> None:
    """Print a line without breaking the bars on screen (tqdm.write where tqdm draws them)."""
    stream = file if file is not None else sys.stdout
    tqdm_module = sys.modules.get("tqdm")
    if tqdm_module is not None:
        tqdm_module.tqdm.write(text, file=stream)
    else:
        print(text, file=stream, flush=True)
