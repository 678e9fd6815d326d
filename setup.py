"""Builds fastinit's extension modules.

OpenMP is detected by compiling, linking and running a small OpenMP program with
the compiler that builds the extensions. Without OpenMP the build goes on with a
warning and the fills run on one thread. Environment variables:

- FASTINIT_REQUIRE_OPENMP=1: a missing OpenMP is an error.
- FASTINIT_DISABLE_OPENMP=1: build without OpenMP even where it is available.
- FASTINIT_SANITIZE=1: build with AddressSanitizer and UndefinedBehaviorSanitizer
  (GCC or Clang; float-to-integer conversions that overflow included), for testing;
  see docs/quality.md for how to run it.
- FASTINIT_EMULATE_AVX512=DIR: run the AVX-512 paths on any CPU, their intrinsics
  computed by SIMDe's portable code (headers in DIR/simde; Debian's libsimde-dev puts
  them in /usr/include), for testing their bits on a machine without AVX-512
  (tools/emulated_paths.py; fastinit/src/fi_emulate.h). Slow; never for users.

The compile flags are part of what decides a rebuild: when they differ from those the
existing objects were built with (say FASTINIT_SANITIZE was set or unset), every
extension is compiled again, even in place.

With GCC, the kernels are compiled with -fstack-reuse=none: GCC 12.2 built a block's
lane states into a stack slot it shared with another local array and dropped their
stores, on correct code (docs/quality.md, "Compiler workarounds"). Compilers without
the option (Clang) build without it.

The C kernels (fastinit/src) are compiled once, into a static library that every
extension links. Nothing is built for the build machine's CPU (no -march=native):
wider instruction sets are reached by runtime dispatch (fastinit/src/fi_dispatch.c).
"""

import glob
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_clib import build_clib
from setuptools.command.build_ext import build_ext

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n) num_threads(2)
        n += 1;
        printf("%d %d\\n", n, omp_get_max_threads() > 0);
        return 0;
    }
    """
)


# Flags kept where the compiler accepts them (the build goes on without the others).
# -fstack-reuse=none: GCC's sharing of stack slots between locals whose lifetimes do
# not overlap miscompiled a kernel (docs/quality.md, "Compiler workarounds").
GUARD_FLAGS = ["-fstack-reuse=none"]


def _flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def openmp_flags(compiler):
    """Compile and link flags that make OpenMP work with ``compiler``, or None."""
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        candidates = [(["-Xpreprocessor", "-fopenmp"], ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    for cflags, ldflags in candidates:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(OPENMP_PROBE)
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                exe = os.path.join(tmp, "probe")
                compiler.link_executable(objs, exe, extra_postargs=ldflags)
                out = subprocess.run([exe], capture_output=True, text=True, timeout=60).stdout
            except Exception:  # compile, link or run failed: no OpenMP with these flags
                continue
            if out.split() == ["2", "1"]:
                return cflags, ldflags
    return None


def accepted_flags(compiler, flags):
    """Those of ``flags`` that ``compiler`` compiles an empty file with, warning-free."""
    if compiler.compiler_type == "msvc":
        return []
    kept = []
    for flag in flags:
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write("int fastinit_probe(void) { return 0; }\n")
            try:
                compiler.compile([src], output_dir=tmp, extra_postargs=[flag, "-Werror"])
            except Exception:  # the compiler rejects or ignores the flag
                continue
            kept.append(flag)
    return kept


def base_flags(compiler_type):
    """(compile flags, link flags) before OpenMP, from the environment."""
    if compiler_type == "msvc":
        return ["/O2", "/fp:precise"], []
    # No FP contraction: every SIMD path must round exactly as the scalar one.
    cflags, ldflags = ["-O3", "-ffp-contract=off", "-Wno-unused-function", "-Wno-psabi"], []
    if _flag("FASTINIT_SANITIZE"):
        sanitize = ["-fsanitize=address,undefined,float-cast-overflow",
                    "-fno-sanitize-recover=undefined,float-cast-overflow",
                    "-fno-omit-frame-pointer", "-g"]
        cflags += sanitize
        ldflags += sanitize
    simde = os.environ.get("FASTINIT_EMULATE_AVX512", "").strip()
    if simde:
        if not os.path.isfile(os.path.join(simde, "simde", "x86", "avx512.h")):
            raise RuntimeError(f"FASTINIT_EMULATE_AVX512={simde!r}: no simde/x86/avx512.h there "
                               "(Debian: apt-get install libsimde-dev, then /usr/include)")
        cflags += ["-DFI_EMULATE_AVX512", "-isystem", simde]
    return cflags, ldflags


KERNEL_SOURCES = [f"fastinit/src/{name}.c" for name in
                  ("fi_dispatch", "fi_path_baseline", "fi_path_avx2", "fi_path_avx512",
                   "fi_path_avx512vbmi", "fi_path_avx512bf16", "fi_detmath", "fi_layout",
                   "fi_runtime", "fi_stream")]
KERNEL_HEADERS = sorted(glob.glob("fastinit/src/*.h") + glob.glob("fastinit/src/*.inc"))


def build_flags(cmd):
    """(compile flags, link flags, whether they changed since the last build) for this
    build: the base flags, the guard flags the compiler accepts, then OpenMP's (each
    probed once, with ``cmd``'s compiler). The kernel library and the extensions are
    built with the same flags."""
    dist = cmd.distribution
    if getattr(dist, "fastinit_flags", None) is None:
        cflags, ldflags = base_flags(cmd.compiler.compiler_type)
        cflags += accepted_flags(cmd.compiler, GUARD_FLAGS)
        if _flag("FASTINIT_DISABLE_OPENMP"):
            print("fastinit: OpenMP disabled by FASTINIT_DISABLE_OPENMP; fills run on one thread")
        else:
            found = openmp_flags(cmd.compiler)
            if found is None:
                msg = ("fastinit: no working OpenMP found for this compiler; building without it. "
                       "Fills will run on one thread.")
                if _flag("FASTINIT_REQUIRE_OPENMP"):
                    raise RuntimeError(msg + " (FASTINIT_REQUIRE_OPENMP is set)")
                cmd.warn(msg)
            else:
                cflags += found[0]
                ldflags += found[1]
        dist.fastinit_flags = cflags, ldflags, _flags_changed(cmd, cflags + ["|"] + ldflags)
    return dist.fastinit_flags


def _flags_changed(cmd, flags):
    """Whether ``flags`` differ from the last build's (recorded beside its objects)."""
    stamp = os.path.join(cmd.build_temp, "fastinit-flags.txt")
    text = " ".join(flags)
    previous = open(stamp).read() if os.path.exists(stamp) else None
    os.makedirs(cmd.build_temp, exist_ok=True)
    with open(stamp, "w") as f:
        f.write(text)
    return previous != text


class BuildClib(build_clib):
    """The kernel library: the C kernels, compiled once, linked into every extension."""

    def build_libraries(self, libraries):
        cflags, _, changed = build_flags(self)
        for _, info in libraries:
            info["cflags"] = cflags
            info["macros"] = [("FI_BUILD_FLAGS", '"%s"' % " ".join(cflags))]
            if changed or self.force:       # build_clib itself only compares file times
                for obj in self.compiler.object_filenames(info["sources"],
                                                          output_dir=self.build_temp):
                    if os.path.exists(obj):
                        os.remove(obj)
        super().build_libraries(libraries)


class BuildExt(build_ext):
    def run(self):
        self.run_command("build_clib")          # also for a bare `build_ext --inplace`
        super().run()

    def build_extensions(self):
        cflags, ldflags, changed = build_flags(self)
        self.force = self.force or changed
        for ext in self.extensions:
            ext.extra_compile_args = cflags + ext.extra_compile_args
            ext.extra_link_args = ldflags + ext.extra_link_args
        super().build_extensions()


def extension(name):
    return Extension(
        f"fastinit.{name}",
        [f"fastinit/{name}.pyx"],
        include_dirs=[numpy.get_include(), "fastinit/src"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        depends=KERNEL_HEADERS + ["fastinit/_kernels.pxd", "fastinit/_plan.pxd"],
        libraries=["fastinit_kernels"] + ([] if sys.platform == "win32" else ["m"]),
    )


if __name__ == "__main__":      # (setuptools' build backend runs this file as __main__)
    setup(
        libraries=[("fastinit_kernels", {"sources": KERNEL_SOURCES,
                                         "include_dirs": ["fastinit/src"],
                                         "obj_deps": {"": KERNEL_HEADERS}})],
        ext_modules=cythonize(
            [extension(name)
             for name in ("_engine", "_runtime", "_plan", "_requests", "_executor")],
            compiler_directives={"language_level": "3"},
        ),
        cmdclass={"build_clib": BuildClib, "build_ext": BuildExt},
    )
