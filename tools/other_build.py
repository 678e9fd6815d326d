"""A copy of the work tree built another way (AVX-512 emulated, another compiler) and
held to the exactness tests and to the fill digest of the build this Python imports:
what tools/emulated_paths.py and tools/clang_build.py share. Not a tool of its own."""

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def native_env():
    """This process's environment without a forced path: the build imported here."""
    env = dict(os.environ)
    env.pop("FASTINIT_SIMD", None)
    return env


def digest(env, cwd):
    return run([sys.executable, "tools/fill_digest.py"], env=env, cwd=cwd,
               capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def built_copy(prefix, env, keep=False):
    """A temporary copy of the tree built in place with ``env`` (build switches, CC,
    ...): yields (directory, the environment that imports it), then removes it
    unless ``keep``."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        tracked_copy(work)
        env = dict(env, PYTHONPATH=str(work))
        run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=work, env=env)
        yield work, env
    finally:
        if keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def imported_facts(work, env):
    """What the build in ``work`` reports, and whether it is the one imported there:
    build_facts() with ``file`` and ``paths`` (the paths this build runs here);
    exits if another fastinit was imported."""
    out = run([sys.executable, "-c", "import json, fastinit, fastinit._runtime as r; "
               "print(json.dumps(dict(r.build_facts(), file=fastinit.__file__, "
               "paths=r.simd_paths())))"], cwd=work, env=env, capture_output=True,
              text=True).stdout
    facts = json.loads(out.splitlines()[-1])
    if not facts["file"].startswith(str(work)):
        sys.exit(f"the build in {work} is not the one imported: {facts['file']}")
    return facts


def hold_to_exactness(work, env, paths, label, expected):
    """tests/test_paths.py, then the exactness suites and the fill digest with each of
    ``paths`` forced; exits unless every digest is ``expected``."""
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    run(pytest + ["tests/test_paths.py"], cwd=work, env=env)
    digests = {}
    for path in paths:
        forced = dict(env, FASTINIT_SIMD=path)
        run(pytest + EXACTNESS, cwd=work, env=forced)
        digests[path] = digest(forced, work)
    for path, d in digests.items():
        print(f"{path} ({label}): fill digest {d}")
    print(f"the build imported here: fill digest {expected}")
    if any(d != expected for d in digests.values()):
        sys.exit(f"the {label} build's fills differ from the build imported here")
