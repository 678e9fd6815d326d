"""Build facts, thread and SIMD settings, and what importing fastinit costs."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastinit
from fastinit import _runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The build tests need the source tree; tools/build_wheels.py runs this suite against an
# installed wheel, from a copy of tests/ without it.
needs_source = pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "setup.py")),
                                  reason="needs the source tree (testing an installed wheel)")


def run_python(code, env=None, cwd=ROOT):
    full_env = dict(os.environ, **(env or {}))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=full_env, cwd=cwd, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip(), out.stderr


def test_build_info():
    info = fastinit.build_info()
    assert info["version"] == fastinit.__version__
    assert isinstance(info["openmp"], bool)
    assert info["num_threads"] == fastinit.get_num_threads() >= 1
    assert info["simd_path"] in info["simd_paths"]
    assert info["simd_paths"][0] == "baseline"
    assert "-ffp-contract=off" in info["flags"]
    assert "-march=native" not in info["flags"]
    assert info["block_elements"] == 2048


def test_gcc_builds_without_stack_slot_sharing():
    # GCC 12.2 dropped the stores of a kernel's locals sharing a stack slot
    # (docs/quality.md, "Compiler workarounds"); setup.py keeps the flag wherever GCC builds.
    info = fastinit.build_info()
    if not info["compiler"].startswith("gcc "):
        pytest.skip(f"built by {info['compiler']}; -fstack-reuse is GCC's option")
    assert "-fstack-reuse=none" in info["flags"].split()


def test_show_config_prints_every_fact(capsys):
    fastinit.show_config()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0].strip() for line in lines] == list(fastinit.build_info())


def test_command_line_show_config():
    out, _ = run_python("from fastinit.__main__ import main; main(['show-config'])")
    assert "simd_path" in out and "openmp" in out


def test_import_does_not_import_torch_scipy_or_ml_dtypes():
    out, _ = run_python("import sys, fastinit; print(sorted(m for m in "
                        "('torch', 'ml_dtypes', 'scipy') if m in sys.modules))")
    assert out == "[]"


def test_set_num_threads_validation(num_threads):
    for bad, exc in [(0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError),
                     (True, TypeError)]:
        with pytest.raises(exc):
            fastinit.set_num_threads(bad)
    if fastinit.build_info()["openmp"]:
        num_threads(3)
        assert fastinit.get_num_threads() == 3
        num_threads(None)
        assert fastinit.get_num_threads() == (os.cpu_count() or 1)


@pytest.mark.skipif(not fastinit.build_info()["openmp"], reason="serial build")
@pytest.mark.parametrize("n", ["1", "3"])
def test_omp_num_threads_is_honoured(n):
    out, _ = run_python("import fastinit; print(fastinit.get_num_threads())",
                        env={"OMP_NUM_THREADS": n})
    assert out == n


@pytest.mark.skipif(not fastinit.build_info()["openmp"], reason="serial build")
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs an affinity mask of two CPUs or more to restrict")
def test_default_threads_respect_the_affinity_mask():
    # As scikit-learn does: the default is capped at the CPUs the process may use (a
    # container's or taskset's mask), unless OMP_NUM_THREADS asks for more.
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "import numpy as np, fastinit; print(fastinit.get_num_threads()); "
            "fastinit.uniform_(np.empty(1 << 20, np.float32)); print('filled')")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0 and out.stdout.split() == ["1", "filled"], out.stderr
    out, _ = run_python(code, env={"OMP_NUM_THREADS": "2"})
    assert out.split() == ["2", "filled"]


@pytest.mark.skipif(not fastinit.build_info()["openmp"], reason="serial build")
def test_threadpoolctl_limits_apply():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    fastinit.set_num_threads(None)
    before = fastinit.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fastinit.get_num_threads() == 1
    assert fastinit.get_num_threads() == before


def test_simd_path_selection(simd_path):
    with pytest.raises(ValueError, match="unknown SIMD path"):
        simd_path("sse9")
    unsupported = [p for p in ("baseline", "avx2", "avx512", "avx512vbmi", "avx512bf16")
                   if p not in _runtime.simd_paths()]
    for p in unsupported:
        with pytest.raises(ValueError, match="cannot run"):
            simd_path(p)
    simd_path("baseline")
    assert _runtime.get_simd_path() == "baseline"


def test_fastinit_simd_environment_variable():
    out, _ = run_python("import fastinit; print(fastinit.build_info()['simd_path'])",
                        env={"FASTINIT_SIMD": "baseline"})
    assert out == "baseline"
    out, err = run_python("import fastinit; print(fastinit.build_info()['simd_path'])",
                          env={"FASTINIT_SIMD": "sse9"})
    assert out == _runtime.simd_paths()[-1]
    assert "FASTINIT_SIMD ignored" in err


# --------------------------------------------------------------------------------------
# Builds without OpenMP: they must build, import, run on one thread, and write the
# same bits. (A real build in a temporary directory: about half a minute.)
# --------------------------------------------------------------------------------------

def copy_sources(dest):
    import shutil
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy(os.path.join(ROOT, name), dest)
    # Not the build's outputs: extensions and the C files Cython generates (fastinit/src
    # holds the kernels' own C sources).
    shutil.copytree(os.path.join(ROOT, "fastinit"), os.path.join(dest, "fastinit"),
                    ignore=shutil.ignore_patterns("*.so", "_*.c", "__pycache__"))


def build(src, **env):
    return subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=src,
                          capture_output=True, text=True, env=dict(os.environ, **env),
                          timeout=600)


@needs_source
def test_serial_build_without_openmp(tmp_path):
    pytest.importorskip("Cython")
    copy_sources(tmp_path)
    result = build(tmp_path, FASTINIT_DISABLE_OPENMP="1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OpenMP disabled" in result.stdout
    out, _ = run_python(
        "import numpy as np, fastinit\n"
        "fastinit.set_num_threads(4)\n"
        "a = np.empty((700, 3001), np.float32)\n"
        "fastinit.Generator(3).uniform_(a)\n"
        "info = fastinit.build_info()\n"
        "print(info['openmp'], info['num_threads'], a.tobytes().hex()[:64], float(a.sum()))",
        cwd=str(tmp_path))
    a = np.empty((700, 3001), np.float32)
    fastinit.Generator(3).uniform_(a)
    assert out == f"False 1 {a.tobytes().hex()[:64]} {float(a.sum())}"
    # The same tree built again in place with other flags is compiled again (an in-place
    # build used to keep the old objects, so a sanitizer build could run uninstrumented).
    result = build(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out, _ = run_python("import fastinit; info = fastinit.build_info(); "
                        "print(info['openmp'], '-fopenmp' in info['flags'])", cwd=str(tmp_path))
    assert out == "True True"


@needs_source
def test_sanitizer_flags(monkeypatch):
    import runpy
    pytest.importorskip("Cython")
    setup = runpy.run_path(os.path.join(ROOT, "setup.py"), run_name="setup_flags")
    monkeypatch.setenv("FASTINIT_SANITIZE", "1")
    cflags, ldflags = setup["base_flags"]("unix")
    for flags in (cflags, ldflags):
        assert "-fsanitize=address,undefined,float-cast-overflow" in flags
        assert "-fno-sanitize-recover=undefined,float-cast-overflow" in flags
    monkeypatch.delenv("FASTINIT_SANITIZE")
    assert not any("sanitize" in f for f in sum(setup["base_flags"]("unix"), []))


@needs_source
def test_required_openmp_fails_when_the_compiler_has_none(tmp_path):
    pytest.importorskip("Cython")
    copy_sources(tmp_path)
    # A compiler that rejects -fopenmp, as one without OpenMP support would.
    cc = tmp_path / "cc-without-openmp"
    cc.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = "-fopenmp" ] && exit 1; done\n'
                  'exec gcc "$@"\n')
    cc.chmod(0o755)
    result = build(tmp_path, CC=str(cc), FASTINIT_REQUIRE_OPENMP="1")
    assert result.returncode != 0
    assert "no working OpenMP" in result.stderr + result.stdout


def test_bench_names_the_cpu():
    from fastinit._bench import cpu_description
    text = cpu_description()
    assert text and text.strip() == text
    if sys.platform.startswith("linux") and os.path.exists("/proc/cpuinfo"):
        flags = open("/proc/cpuinfo").read().split("flags", 1)[1].split("\n", 1)[0].split()
        assert ("avx2" in text.split("(")[-1]) == ("avx2" in flags)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise is Linux's")
def test_huge_page_policy_and_advice():
    code = ("import numpy as np, fastinit; from fastinit import _runtime\n"
            "a = np.empty(16 << 20, np.uint8)\n"
            "print(_runtime.advise_huge_pages(a.ctypes.data, a.nbytes), "
            "_runtime.advise_huge_pages(a.ctypes.data, 1 << 20), "
            "fastinit.build_info()['huge_pages'].split(':')[0])")
    off, _ = run_python(code, {"FASTINIT_HUGEPAGES": "0"})
    assert off == "0 0 off"
    on, _ = run_python(code, {"FASTINIT_HUGEPAGES": "1"})
    advised, small, state = on.split()
    # 16 MiB from numpy: at least 14 MiB of whole 2 MiB pages inside it; 1 MiB: none.
    assert state == "on" and small == "0" and (14 << 20) <= int(advised) <= (16 << 20)
    auto, _ = run_python(code, {"FASTINIT_HUGEPAGES": "auto"})
    if "FASTINIT_HUGEPAGES" not in os.environ:          # this process decided by "auto" too
        assert auto.split()[2] == fastinit.build_info()["huge_pages"].split(":")[0]
    bogus, err = run_python(code, {"FASTINIT_HUGEPAGES": "sometimes"})
    assert bogus == auto and "FASTINIT_HUGEPAGES='sometimes' ignored" in err


@pytest.mark.parametrize("args, message", [
    (["raw", "--seed", "-1"], "non-negative"),
    (["raw", "--seed", "x"], "not an int"),
    (["bench", "--sizes", "abc"], "not a number"),
    (["bench", "--sizes", "nan"], "whole number"),
    (["bench", "--sizes", "inf"], "whole number"),
    (["bench", "--sizes", "-5"], "whole number"),
    (["bench", "--sizes", "1e6,2.5"], "whole number"),
    (["bench", "--repeat", "0"], "whole number"),
    (["bench", "--threads", "0"], "whole number"),
])
def test_command_line_refuses_bad_arguments_with_usage(args, message):
    done = subprocess.run([sys.executable, "-m", "fastinit", *args], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("command", ["show-config", "raw"])
def test_command_line_output_that_cannot_be_written(command):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "fastinit", command], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 1 and "No space left" in done.stderr
    assert "Traceback" not in done.stderr
    closed = subprocess.run([sys.executable, "-m", "fastinit", command], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, timeout=120,
                            preexec_fn=lambda: os.close(1))
    assert closed.returncode == 1 and "closed" in closed.stderr
    piped = subprocess.run(f"{sys.executable} -m fastinit raw | head -c 10 > /dev/null",
                           shell=True, stderr=subprocess.PIPE, text=True, timeout=120)
    assert "Traceback" not in piped.stderr
