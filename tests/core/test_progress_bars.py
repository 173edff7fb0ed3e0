"""The command line's progress bars: a quiet run draws none and does without tqdm."""

from __future__ import annotations

import io
import subprocess
import sys

from dtpm_core.progress_bars import NoBar, progress_bar, write_line


def test_a_quiet_bar_gives_the_items_and_counts_nothing_on_screen(capsys):
    bar = progress_bar(["a", "b"], quiet=True, unit="image", desc="images")
    assert isinstance(bar, NoBar) and list(bar) == ["a", "b"]
    passes = progress_bar(quiet=True, total=0, unit="pass")
    passes.total = 4
    passes.set_postfix_str("sampling", refresh=False)
    passes.update(3 - passes.n)
    passes.update(4 - passes.n)
    assert passes.n == 4
    passes.close()
    assert capsys.readouterr() == ("", "")


def test_a_bar_that_is_drawn_is_tqdms():
    from tqdm import tqdm

    stream = io.StringIO()
    bar = progress_bar([1, 2, 3], quiet=False, file=stream, desc="images")
    assert isinstance(bar, tqdm) and list(bar) == [1, 2, 3]
    bar.close()
    assert "images" in stream.getvalue()


def test_lines_are_written_with_or_without_tqdm():
    code = ("import io, sys; from dtpm_core.progress_bars import write_line; s = io.StringIO(); "
            "write_line('failed: x', file=s); "
            "sys.exit(0 if s.getvalue() == 'failed: x\\n' and 'tqdm' not in sys.modules else 1)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    import tqdm  # noqa: F401  (loaded: its write keeps the bars on screen whole)

    stream = io.StringIO()
    write_line("failed: y", file=stream)
    assert stream.getvalue() == "failed: y\n"
