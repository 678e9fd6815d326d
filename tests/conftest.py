import pytest

import fastinit
from fastinit import _runtime


@pytest.fixture
def num_threads():
    """Set the fill thread count inside a test; restored afterwards."""
    yield fastinit.set_num_threads
    fastinit.set_num_threads(None)


@pytest.fixture
def simd_path():
    """Switch the kernels' instruction-set path inside a test; restored afterwards."""
    before = _runtime.get_simd_path()
    yield _runtime.set_simd_path
    _runtime.set_simd_path(before)
