"""Test the AVX-512 paths' bits on a CPU without AVX-512, under emulation.

    python tools/emulated_paths.py [--simde DIR] [--keep]

A CPU without AVX-512 skips the avx512 and avx512vbmi paths' tests (it cannot run
them). This builds a copy of the work tree's tracked files with
FASTINIT_EMULATE_AVX512=DIR (setup.py; fastinit/src/fi_emulate.h): those two paths'
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
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMULATED = ("avx512", "avx512vbmi")
EXACTNESS = ["tests/test_stream.py", "tests/test_normal.py", "tests/test_bulk.py",
             "tests/test_init.py", "tests/test_generator.py"]


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def tracked_copy(dest):
    """The work tree's files as git sees them (tracked ones as they are now, edits
    included, and new ones not ignored) under ``dest``: no in-place build output."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def digest(env, cwd):
    return run([sys.executable, "tools/fill_digest.py"], env=env, cwd=cwd,
               capture_output=True, text=True).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simde", default="/usr/include",
                    help="the directory holding simde/ (default: /usr/include)")
    ap.add_argument("--keep", action="store_true", help="keep the emulated build's directory")
    args = ap.parse_args()
    simde = Path(args.simde).resolve()
    if not (simde / "simde" / "x86" / "avx512.h").is_file():
        sys.exit(f"no SIMDe headers under {simde} (Debian: apt-get install libsimde-dev)")

    native = dict(os.environ)
    native.pop("FASTINIT_SIMD", None)
    expected = digest(native, ROOT)

    work = Path(tempfile.mkdtemp(prefix="fastinit-emulated-"))
    try:
        tracked_copy(work)
        env = dict(native, FASTINIT_EMULATE_AVX512=str(simde), PYTHONPATH=str(work))
        run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=work, env=env)
        facts = run([sys.executable, "-c", "import fastinit, fastinit._runtime as r; "
                     "print(fastinit.__file__); print(r.build_facts()['flags']); "
                     "print(' '.join(r.simd_paths()))"], cwd=work, env=env, capture_output=True,
                    text=True).stdout.splitlines()
        if not (facts[0].startswith(str(work)) and "FI_EMULATE_AVX512" in facts[1]
                and set(EMULATED) <= set(facts[2].split())):
            sys.exit(f"the emulated build is not the one imported: {facts}")

        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        run(pytest + ["tests/test_paths.py"], cwd=work, env=env)
        digests = {}
        for path in EMULATED:
            forced = dict(env, FASTINIT_SIMD=path)
            run(pytest + EXACTNESS, cwd=work, env=forced)
            digests[path] = digest(forced, work)
        for path, d in digests.items():
            print(f"{path} (emulated): fill digest {d}")
        print(f"native build: fill digest {expected}")
        if any(d != expected for d in digests.values()):
            sys.exit("the emulated paths' fills differ from the native build's")
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
