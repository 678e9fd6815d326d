"""One OpenMP runtime per process, whichever of fastinit and torch is imported first.

A wheel carries its own GNU OpenMP runtime (``fastinit.libs/libgomp-<hash>.so.1.0.0``,
renamed by auditwheel), and torch carries another. torch loads its runtime into the
process's global symbol scope (``RTLD_GLOBAL``), where the dynamic linker looks first:
imported after torch, fastinit's modules bind to torch's runtime, one pool of threads.
Imported before it, they used to bind to their own, and the two pools' idle threads
spin (GNU OpenMP's default wait) on the cores the other pool's work needs: alternating
fills with torch ops, two threads filled 1.6x faster than one instead of 2.0x.

Loading the bundled runtime into the global scope before any extension module makes
torch's later lookups find it too: one runtime in either order, as in a build from
source (where both load the system's ``libgomp.so.1``). A build from source has no
bundled runtime, and this does nothing.
"""

import ctypes
import glob
import os


def _load_bundled_runtime():
    libs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "fastinit.libs")
    paths = sorted(glob.glob(os.path.join(libs, "libgomp*.so*")))
    for path in paths:
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    return paths


#: The bundled OpenMP runtime(s) made global at import (empty for a source build).
BUNDLED = _load_bundled_runtime()
