"""The sdist holds exactly the project's files: everything needed to build, test and
benchmark it (what git tracks), and no build output. An installed wheel references
no glibc symbol newer than its manylinux tag allows."""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tracked files that are the repository's own, not the package's.
REPOSITORY_ONLY = {".ci/run", ".gitignore"}
# What setuptools adds: metadata, not project files.
GENERATED = {"PKG-INFO", "setup.cfg"}


@pytest.mark.skipif(not os.path.isdir(os.path.join(ROOT, ".git")) or shutil.which("git") is None,
                    reason="needs the git checkout (its tracked files are the reference)")
def test_sdist_holds_the_tracked_files_and_nothing_else(tmp_path):
    pytest.importorskip("Cython")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    tracked = {f for f in tracked if os.path.exists(os.path.join(ROOT, f))} - REPOSITORY_ONLY
    out = subprocess.run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    (archive,) = tmp_path.glob("fastinit-*.tar.gz")
    with tarfile.open(archive) as tar:
        files = {m.name.split("/", 1)[1] for m in tar.getmembers() if m.isfile()}
    files = {f for f in files if not f.startswith("fastinit.egg-info/")} - GENERATED
    assert files - tracked == set(), "build output or stray files in the sdist"
    assert tracked - files == set(), "project files missing from the sdist"


def _wheel_tags():
    try:
        wheel = importlib.metadata.distribution("fastinit").read_text("WHEEL") or ""
    except importlib.metadata.PackageNotFoundError:
        return []
    return re.findall(r"^Tag: (\S+)$", wheel, re.M)


def test_installed_wheel_references_no_glibc_newer_than_its_tag():
    tags = [t for t in _wheel_tags() if "manylinux" in t]
    if not tags:
        pytest.skip("fastinit is not installed from a manylinux wheel (a source build)")
    if shutil.which("objdump") is None:
        pytest.skip("needs objdump (binutils) to read the shared objects' symbols")
    limit = max((int(a), int(b)) for t in tags for a, b in re.findall(r"manylinux_(\d+)_(\d+)", t))
    dist = importlib.metadata.distribution("fastinit")
    objects = [dist.locate_file(f) for f in dist.files or ()
               if re.search(r"\.so(\.\d+)*$", str(f))]
    assert any("fastinit.libs" in str(o) for o in objects)     # the grafted OpenMP runtime
    symbols = {}
    for obj in objects:
        out = subprocess.run(["objdump", "-T", str(obj)], capture_output=True, text=True,
                             check=True).stdout
        for name_version in re.findall(r"\(GLIBC_([0-9.]+)\)\s+(\S+)", out):
            version, name = name_version
            symbols.setdefault((obj.name, name), tuple(int(x) for x in version.split(".")))
    assert symbols, "no versioned glibc symbol found: objdump's output not understood"
    above = {f"{o}: {n}@GLIBC_{'.'.join(map(str, v))}" for (o, n), v in symbols.items()
             if v > limit}
    assert not above, f"symbols newer than glibc {limit} (the tag): {sorted(above)}"
