"""The memory estimate and the memory left (issue 21 item 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dtpm_core.engines import memory_budget as mb
from dtpm_core.options import DTPM, MIN_TILE, SINGLE_PASS


def test_the_estimate_grows_with_the_image_and_the_tile():
    small = mb.estimate_bytes(DTPM, 1000, 1000, 512)
    assert small < mb.estimate_bytes(DTPM, 2000, 2000, 512)
    assert mb.estimate_bytes(DTPM, 2000, 2000, 256) < mb.estimate_bytes(DTPM, 2000, 2000, 512)
    assert mb.estimate_bytes(SINGLE_PASS, 1000, 1000, 512) < small
    # the 169-megapixel photo needs far more than a 6 GB limit
    assert mb.estimate_bytes(DTPM, 13000, 13000, 512) > 6e9
    assert mb.estimate_bytes(DTPM, 13000, 13000, 512, "cuda") < \
        mb.estimate_bytes(DTPM, 13000, 13000, 512)


def test_fit_tile_halves_down_to_the_minimum_only():
    need = {t: mb.estimate_bytes(DTPM, 3000, 4000, t) for t in (512, 256, 128, MIN_TILE)}
    assert mb.fit_tile(DTPM, 3000, 4000, 512, "cpu", need[512]) == 512
    assert mb.fit_tile(DTPM, 3000, 4000, 512, "cpu", need[256]) == 256
    assert mb.fit_tile(DTPM, 3000, 4000, 512, "cpu", need[MIN_TILE]) == MIN_TILE
    assert mb.fit_tile(DTPM, 3000, 4000, 512, "cpu", need[MIN_TILE] - 1) is None
    assert mb.fit_tile(DTPM, 100, 100, 0, "cpu", 1) is None  # ends, whatever the numbers


def test_the_openvino_backend_is_estimated_on_its_own_measurements():
    """A 2.4 MP photo in one 2048 px window fits 4 GB with OpenVINO (1.9 GB measured peak for
    DTPM at bf16, 2.7 GB at fp32) where the torch estimate asks for a smaller tile."""
    four_gb = 4 * 2 ** 30
    assert mb.estimate_bytes(DTPM, 1264, 1898, 2048, backend="openvino") < four_gb
    assert mb.fit_tile(DTPM, 1264, 1898, 2048, "cpu", four_gb, "openvino") == 2048
    assert mb.fit_tile(DTPM, 1264, 1898, 2048, "cpu", four_gb, "torch") < 2048
    for engine in (DTPM, SINGLE_PASS):
        assert mb.estimate_bytes(engine, 3000, 4000, 512, backend="openvino") < \
            mb.estimate_bytes(engine, 3000, 4000, 512)


def test_cgroup_limits_v2_and_v1_are_read(tmp_path):
    membership = tmp_path / "cgroup"
    root = tmp_path / "fs"
    job = root / "jobs" / "one"
    job.mkdir(parents=True)
    (job / "memory.max").write_text("6000000000\n")
    (job / "memory.current").write_text("2500000000\n")
    (job / "memory.stat").write_text("anon 1\ninactive_file 500000000\n")
    (root / "jobs" / "memory.max").write_text("max\n")
    membership.write_text("0::/jobs/one\n")
    assert mb._cgroup_room(membership, root) == [6_000_000_000 - 2_000_000_000]
    v1 = root / "memory" / "box"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("1000\n")
    (v1 / "memory.usage_in_bytes").write_text("400\n")
    membership.write_text("5:memory:/box\n")
    assert mb._cgroup_room(membership, root) == [600]
    assert mb._cgroup_room(tmp_path / "missing", root) == []


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc")
def test_an_address_space_limit_is_seen():
    assert mb.available_memory_bytes() > 0
    code = ("import resource, re\n"
            "vm = int(re.search(r'VmSize:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"
            "resource.setrlimit(resource.RLIMIT_AS, (vm * 1024 + 300 * 2**20, "
            "resource.RLIM_INFINITY))\n"
            "from dtpm_core.engines.memory_budget import available_memory_bytes\n"
            "print(available_memory_bytes())\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2],
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    assert 0 < int(run.stdout) <= 300 * 2**20


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux /proc")
def test_reading_a_photo_does_not_reserve_the_largest_file_size(tmp_path):
    """Under ulimit -v, reading a small photo used to reserve MAX_IMAGE_FILE_BYTES (2 GiB) of
    address space for its bytes and fail with MemoryError."""
    import numpy as np
    from PIL import Image
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(tmp_path / "a.png")
    code = ("import resource, re, sys\n"
            "from dtpm_core.files.imageio import read_image\n"
            "vm = int(re.search(r'VmSize:\\s+(\\d+)', open('/proc/self/status').read())[1])\n"
            "resource.setrlimit(resource.RLIMIT_AS, (vm * 1024 + 400 * 2**20, "
            "resource.RLIM_INFINITY))\n"
            "print(read_image(sys.argv[1]).rgb.shape)\n")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.png")],
                         capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2],
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "(32, 48, 3)"
