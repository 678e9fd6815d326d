"""On demand (python -m pytest -m slow tests/test_quality.py): dieharder on the raw
stream, and on a weak stream it must reject (docs/quality.md)."""

import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def dieharder(test, source, extra=()):
    cmd = (f"{sys.executable} -m fastinit raw {source} | dieharder -g 200 -d {test} "
           + " ".join(extra))
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=1800)
    return [line.split("|")[-1].strip() for line in out.stdout.splitlines()
            if line.count("|") >= 5 and not line.startswith("stdin_input")]


@pytest.mark.skipif(shutil.which("dieharder") is None, reason="dieharder is not installed")
@pytest.mark.parametrize("test, extra", [(0, ()), (2, ()), (100, ()), (200, ("-n", "6"))])
def test_dieharder_passes_fastinit_and_fails_the_control(test, extra):
    ours = dieharder(test, "--seed 1", extra)
    assert ours and "FAILED" not in ours
    assert "FAILED" in dieharder(test, "--control weyl", extra)
