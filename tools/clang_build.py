"""Build the tree with Clang and hold it to the GCC build's bits.

    python tools/clang_build.py [--cc clang-19] [--keep]

README promises builds from source with GCC 12+ or Clang 15+ (with libomp); the
suite runs against GCC's build. This builds a copy of the work tree's tracked files
with ``CC`` set to Clang (as a user's ``CC=clang pip install .`` does; Debian:
``apt-get install clang-19 libomp-19-dev``), checks that the copy imported is Clang's
and has OpenMP, then, against that build:

0. (first) each path file, preprocessed by Clang, defines the ISA macro of every
   feature its GCC pragma names, by which the kernels choose their intrinsic branches;

1. tests/test_paths.py: every path this CPU runs against the pure-Python reference;
2. with each such path forced (FASTINIT_SIMD), the other exactness suites
   (test_stream, test_normal, test_bulk, test_init, test_generator);
3. tools/fill_digest.py on each such path, which must equal the digest of the build
   this Python imports (GCC's, in CI).

Same bits from another compiler: the kernels' floating-point operations are explicit
(``-ffp-contract=off``, no fast-math), so a compiler that contracted or reordered one
would show here. Paths this CPU cannot run are not tested by it (see
tools/emulated_paths.py for those). Exits non-zero if anything fails.
"""

import argparse
import re
import shutil
import subprocess
import sys

from normal_parts import target_features
from other_build import (ROOT, built_copy, digest, hold_to_exactness, imported_facts, native_env,
                         run)

CANDIDATES = ["clang"] + [f"clang-{v}" for v in range(25, 14, -1)]
OLDEST = 15


def find_clang(name):
    """(command, major version) of ``name``, or of the first Clang on PATH."""
    for cc in [name] if name else CANDIDATES:
        if shutil.which(cc) is None:
            continue
        banner = subprocess.run([cc, "--version"], capture_output=True, text=True,
                                check=False).stdout
        found = re.search(r"clang version (\d+)", banner)
        if found:
            return cc, int(found.group(1))
        if name:
            sys.exit(f"{cc} is not Clang: {banner.splitlines()[:1]}")
    sys.exit(f"no Clang found ({name or ', '.join(CANDIDATES[:3])}...; Debian: "
             f"apt-get install clang-19 libomp-19-dev)")


def check_isa_macros(cc):
    """Exits unless every path file, preprocessed by Clang, defines the ISA macro of
    each feature its GCC pragma names (``__AVX2__`` for avx2, ...): Clang's target
    attribute defines none, the path files define them by hand, and without one a
    kernel silently compiles its portable branch, with the same bits but slower."""
    src = ROOT / "fastinit" / "src"
    for file in sorted(src.glob("fi_path_*.c")):
        path = file.stem.removeprefix("fi_path_")
        macros = run([cc, "-E", "-dM", "-I", src, file], capture_output=True,
                     text=True).stdout.splitlines()
        missing = [f for f in target_features(src, path)
                   if f"#define __{f.upper()}__ 1" not in macros]
        if missing:
            sys.exit(f"{file.name} under {cc} defines no ISA macro for {', '.join(missing)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cc", help="the Clang to build with (default: the first on PATH)")
    ap.add_argument("--keep", action="store_true", help="keep the Clang build's directory")
    args = ap.parse_args()
    cc, major = find_clang(args.cc)
    if major < OLDEST:
        sys.exit(f"{cc} is Clang {major}; README asks for Clang {OLDEST} or newer")
    check_isa_macros(cc)

    native = native_env()
    expected = digest(native, ROOT)
    with built_copy("fastinit-clang-", dict(native, CC=cc), args.keep) as (work, env):
        facts = imported_facts(work, env)
        if not facts["compiler"].startswith("clang"):
            sys.exit(f"the build imported is not Clang's: {facts['compiler']}")
        if not facts["openmp"]:
            sys.exit(f"the Clang build has no OpenMP (Debian: apt-get install "
                     f"libomp-{major}-dev)")
        hold_to_exactness(work, env, facts["paths"], facts["compiler"], expected)


if __name__ == "__main__":
    main()
