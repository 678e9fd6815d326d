"""The measuring tools under tools/ still build against the kernels and run, so that
they do not rot between the sessions that use them."""

import os
import platform
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NORMAL_PARTS = os.path.join(ROOT, "tools", "normal_parts.py")
PATHS = ("avx512vbmi", "avx512", "avx2", "baseline")


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64"
                    or shutil.which("gcc") is None or not os.path.exists(NORMAL_PARTS),
                    reason="tools/normal_parts.py needs GCC on x86-64 Linux and the source tree")
def test_normal_parts_times_every_path_this_cpu_runs_and_their_values_agree():
    run = subprocess.run([sys.executable, NORMAL_PARTS, "--rounds", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[-1] == "the whole blocks' values are the same on every path and tree"
    skipped = {line.split()[1].rstrip(":") for line in lines if line.startswith("skipped ")}
    timed = {line.split()[0] for line in lines if line.startswith("  ") and
             not line.startswith("    ")}
    assert "baseline" in timed and skipped | timed == set(PATHS) and not skipped & timed
    rows = [line.split() for line in lines if line.startswith("    ")]
    assert len(rows) == 3 * 2 * len(timed)                  # 3 parts x float32, float64
    assert all(float(row[-1]) > 0 for row in rows)
