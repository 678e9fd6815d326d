"""What this build of fastinit is and how it will run."""

import platform
import sys

import numpy as np

from fastinit import _runtime
from fastinit._version import __version__


def build_info():
    """A dict of facts about this build and this machine's fill settings.

    Keys: version, openmp, num_threads, simd_path, simd_paths, compiler, flags,
    block_elements, huge_pages (whether fresh memory is advised to use transparent
    huge pages, and why), python, numpy, machine.
    """
    facts = _runtime.build_facts()
    return {
        "version": __version__,
        "openmp": facts["openmp"],
        "num_threads": _runtime.get_num_threads(),
        "simd_path": _runtime.get_simd_path(),
        "simd_paths": _runtime.simd_paths(),
        "compiler": facts["compiler"],
        "flags": facts["flags"],
        "block_elements": facts["block_elements"],
        "huge_pages": facts["huge_pages"],
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "machine": platform.machine(),
    }


def show_config():
    """Print ``build_info()``, one fact a line."""
    info = build_info()
    width = max(len(k) for k in info)
    for key, value in info.items():
        if isinstance(value, list):
            value = ", ".join(value)
        print(f"{key:<{width}} : {value}")
