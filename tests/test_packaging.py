"""The sdist holds exactly the project's files: everything needed to build, test and
benchmark it (what git tracks), and no build output."""

import os
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
