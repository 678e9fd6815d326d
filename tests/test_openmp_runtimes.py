"""fastinit next to torch, imported in either order: one OpenMP runtime, correct and
parallel fills, thread settings that act, the fork rule, no hang.

A wheel carries its own OpenMP runtime (renamed by auditwheel; see
fastinit/_openmp_runtime.py), a build from source links the system's; torch carries
another. tools/build_wheels.py runs these tests against each installed wheel."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastinit

pytest.importorskip("torch")

CHILD = r"""
import json, os, sys
if sys.argv[1] == "torch first":
    import torch, fastinit
else:
    import fastinit, torch
import numpy as np
import threadpoolctl

out = {}
n = 1 << 22
a = np.empty(n, np.float32)
fastinit.Generator(5).normal_(a)
out["fill"] = a[:: n // 64].tolist()
out["default"] = fastinit.get_num_threads()

torch.set_num_threads(1)                 # one runtime: torch's setting is OpenMP's default
out["after_torch_1"] = fastinit.get_num_threads()
torch.set_num_threads(out["default"])
fastinit.set_num_threads(1)
out["set_1"] = fastinit.get_num_threads()
fastinit.set_num_threads(None)
with threadpoolctl.threadpool_limits(1, user_api="openmp"):
    out["threadpoolctl_1"] = fastinit.get_num_threads()
out["restored"] = fastinit.get_num_threads()

x = torch.randn(128, 128)
for i in range(30):                      # fills and torch ops alternate
    fastinit.Generator(i).uniform_(a)
    x = torch.tanh(x @ x)
out["threads"] = int([l for l in open("/proc/self/status")
                      if l.startswith("Threads:")][0].split()[1])

r, w = os.pipe()
pid = os.fork()
if pid == 0:                             # the fork rule: serial fills, no hang
    import signal
    signal.alarm(60)                     # a hang ends the child; the parent sees no result
    b = np.empty(n, np.float32)
    fastinit.Generator(5).normal_(b)
    # A parallel torch op after the parent's parallel fills: one thread, not a hang.
    total = float((torch.ones(1 << 24) * 2 + 1).sum())
    os.write(w, json.dumps([fastinit.get_num_threads(), b[:: n // 64].tolist(),
                            total]).encode())
    os._exit(0)
os.close(w)
child = b""
while chunk := os.read(r, 1 << 16):
    child += chunk
os.waitpid(pid, 0)
out["child_threads"], out["child_fill"], out["child_torch"] = json.loads(child)
print(json.dumps(out))
"""


def run_child(order):
    pytest.importorskip("threadpoolctl")
    # Thread-count variables (OMP_NUM_THREADS, MKL_NUM_THREADS, which dask's workers
    # set in this process, ...) would set the one runtime's default through torch.
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", CHILD, order], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.skipif(not fastinit.build_info()["openmp"], reason="needs an OpenMP build")
@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.exists("/proc/self/status"),
                    reason="needs fork and /proc (Linux)")
@pytest.mark.skipif(fastinit.build_info()["compiler"].startswith("clang"),
                    reason="a Clang build runs on LLVM's libomp, torch on GNU's libgomp: two "
                           "runtimes by construction (README, Install)")
def test_torch_and_fastinit_share_one_runtime_in_either_order():
    n = 1 << 22
    expected = np.empty(n, np.float32)
    fastinit.Generator(5).normal_(expected)
    expected = expected[:: n // 64].tolist()
    cpus = min(os.cpu_count(), len(os.sched_getaffinity(0)))
    results = {order: run_child(order) for order in ("torch first", "fastinit first")}
    for order, out in results.items():
        assert out["fill"] == expected, order
        assert out["default"] == cpus, order
        assert out["after_torch_1"] == 1, f"{order}: fastinit and torch run two OpenMP runtimes"
        assert out["set_1"] == 1 and out["threadpoolctl_1"] == 1, order
        assert out["restored"] == cpus, order
        assert out["child_threads"] == 1 and out["child_fill"] == expected, order
        assert out["child_torch"] == 3 * (1 << 24), order
    # One pool of threads, not one per runtime: the same count in either order.
    assert results["torch first"]["threads"] == results["fastinit first"]["threads"]


def test_bundled_runtime_is_global_where_there_is_one():
    from fastinit import _openmp_runtime
    libs = os.path.join(os.path.dirname(os.path.dirname(fastinit.__file__)), "fastinit.libs")
    bundled = sorted(f for f in (os.listdir(libs) if os.path.isdir(libs) else [])
                     if f.startswith("libgomp"))
    assert [os.path.basename(p) for p in _openmp_runtime.BUNDLED] == bundled
