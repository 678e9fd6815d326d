"""Test the AVX-512 paths' bits on a CPU without AVX-512, under emulation.

    python tools/emulated_paths.py [--simde DIR] [--keep]

A CPU without AVX-512 skips the avx512, avx512vbmi and avx512bf16 paths' tests (it
cannot run them). This builds a copy of the work tree's tracked files with
FASTINIT_EMULATE_AVX512=DIR (setup.py; fastinit/src/fi_emulate.h): those paths'
kernels take their AVX-512 branches, with the same intrinsics, computed by SIMDe's
portable implementations (headers in DIR/simde; Debian's libsimde-dev, DIR
/usr/include, the default). Then, against that build:

1. tests/test_paths.py, every path (the emulated ones included) against the
   pure-Python reference, at every alignment, and the 16-bit rounding's special and
   sampled float32 patterns;
2. with each emulated path forced (FASTINIT_SIMD), the other exactness suites
   (test_stream, test_normal, test_bulk, test_init, test_generator);
3. tools/fill_digest.py on each emulated path, which must equal this machine's
   native build's digest.

What it checks is the kernels' logic: the branches, shuffles, masks and look-ups
written for AVX-512. That the CPU's own instructions compute what SIMDe computes is
Intel's and SIMDe's to keep; a real AVX-512 CPU runs the same tests natively, and
speed is measured only there. Needs a C compiler and the test extra (Cython,
setuptools, numpy) in the running Python; takes some minutes (the build). Exits
non-zero if anything fails.
"""

import argparse
import sys
from pathlib import Path

from other_build import ROOT, built_copy, digest, hold_to_exactness, imported_facts, native_env

EMULATED = ("avx512", "avx512vbmi", "avx512bf16")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simde", default="/usr/include",
                    help="the directory holding simde/ (default: /usr/include)")
    ap.add_argument("--keep", action="store_true", help="keep the emulated build's directory")
    args = ap.parse_args()
    simde = Path(args.simde).resolve()
    if not (simde / "simde" / "x86" / "avx512.h").is_file():
        sys.exit(f"no SIMDe headers under {simde} (Debian: apt-get install libsimde-dev)")

    native = native_env()
    expected = digest(native, ROOT)
    with built_copy("fastinit-emulated-", dict(native, FASTINIT_EMULATE_AVX512=str(simde)),
                    args.keep) as (work, env):
        facts = imported_facts(work, env)
        if not ("FI_EMULATE_AVX512" in facts["flags"] and set(EMULATED) <= set(facts["paths"])):
            sys.exit(f"the build imported is not the emulated one: {facts}")
        hold_to_exactness(work, env, EMULATED, "emulated", expected)


if __name__ == "__main__":
    main()
