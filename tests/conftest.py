import pytest

import fastinit
from fastinit import _fill


@pytest.fixture
def num_threads():
    """Set the fill thread count inside a test; restored afterwards."""
    yield fastinit.set_num_threads
    fastinit.set_num_threads(None)


@pytest.fixture
def simd_path():
    """Switch the kernels' instruction-set path inside a test; restored afterwards."""
    before = _fill.get_simd_path()
    yield _fill.set_simd_path
    _fill.set_simd_path(before)
