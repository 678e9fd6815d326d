"""fastinit: fast, reproducible, parallel neural-network weight initialization.

A :class:`Generator` fills arrays in place from a counter-based xoshiro256**
stream whose values depend only on (seed, call, element index): the same for any
thread count, instruction set or sharding. See docs/stream.md.
"""

from fastinit import _openmp_runtime  # noqa: F401  (first: before any extension module)
from fastinit._checks import ArgumentError
from fastinit._config import build_info, show_config
from fastinit._engine import Xoshiro256StarStar
from fastinit._runtime import get_num_threads, set_num_threads
from fastinit._generator import Generator, default_generator, manual_seed
from fastinit._version import __version__
from fastinit.init import (
    calculate_gain, constant_, dirac_, empty, eye_, init_all, kaiming_normal_, kaiming_uniform_,
    lecun_normal_, lecun_uniform_, normal_, ones_, orthogonal_, sparse_, trunc_normal_,
    uniform_, variance_scaling_, xavier_normal_, xavier_uniform_, zeros_,
)

__all__ = [
    "calculate_gain", "constant_", "dirac_", "empty", "eye_", "init_all", "kaiming_normal_",
    "kaiming_uniform_", "lecun_normal_", "lecun_uniform_", "normal_", "ones_", "orthogonal_",
    "sparse_", "trunc_normal_", "uniform_", "variance_scaling_", "xavier_normal_",
    "xavier_uniform_", "zeros_",
    "ArgumentError",
    "Generator",
    "Xoshiro256StarStar",
    "build_info",
    "default_generator",
    "get_num_threads",
    "manual_seed",
    "set_num_threads",
    "show_config",
    "__version__",
]
