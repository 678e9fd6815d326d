"""Where a normal block's time goes, per instruction-set path, and before against after.

    python tools/normal_parts.py [--paths avx2,baseline] [--rounds 201] [--against REF]

Compiles a small C harness against fastinit/src (each path's harness with that
path's own instruction set, read from its fi_path_<path>.c) and times, on one
thread and in cache, the three parts of a whole float32 and float64 normal block
(2,048 values): the fast pass (main lanes seeded, the vectorized Ziggurat over every
candidate), the fix-ups (auxiliary lanes seeded, the rejected candidates completed)
and the whole block as the fills run it (both, then mean + std * z stored). Medians
of interleaved rounds of 16 blocks, in nanoseconds per block.

With ``--against REF`` (a git revision), REF's fastinit/src is built the same way and
the two harnesses run alternately, so that a kernel change can be judged on this
machine by the ratio. Every harness also hashes the values its whole blocks wrote;
the hashes must agree across paths and trees (a faster kernel never changes a bit),
or the tool exits with status 1.

GCC on x86-64 only; paths this CPU cannot run are skipped with the reason. The
machine should be otherwise idle: the figures are medians, not guarantees.
"""

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATHS = ["avx512vbmi", "avx512", "avx2", "baseline"]

FLAGS = ["-O3", "-ffp-contract=off", "-Wno-unused-function", "-Wno-psabi",
         "-fstack-reuse=none"]                                        # as setup.py (GCC)
LIBRARY = ["fi_detmath.c", "fi_layout.c", "fi_stream.c"]       # path-independent sources
PARTS = ["fast pass", "fix-ups", "whole block"]

# One path's harness: the path's instruction set for the whole file, then the kernels.
HARNESS = r"""
@TARGET@
#include "fi_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { BLOCKS = 16 };

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e9 * (double)t.tv_sec + (double)t.tv_nsec;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001b3ULL;
    return h;
}

/* The parts of blocks b0 .. b0 + BLOCKS - 1 of one fill: ns per block in t[0..2]. */
#define DEFINE_PARTS(NAME, CTYPE, VEC, PER_STEP, FAST, FIX, WHOLE, FMT)                    \
static void NAME(uint64_t sigma, uint64_t b0, double *t, uint64_t *hash)                   \
{                                                                                          \
    VEC z[FI_BLOCK / (PER_STEP)][FI_NV] FI_ALIGN64;                                        \
    CTYPE out[FI_BLOCK] FI_ALIGN64;                                                        \
    uint64_t rej[BLOCKS][FI_BLOCK / 64];                                                   \
    fi_lanes aux;                                                                          \
    const fi_normal_params pr = {sigma, 0.0, 1.0, 0.0f, 1.0f};                             \
    double t0 = now_ns();                                                                  \
    for (int b = 0; b < BLOCKS; b++) {                                                     \
        fi_lanesv ln;                                                                      \
        fi_lanesv_seed(&ln, sigma, b0 + b, 0);                                             \
        FAST(&ln, z, rej[b]);                                                              \
    }                                                                                      \
    t[0] = (now_ns() - t0) / BLOCKS;                                                       \
    double fix = 0;                                                                        \
    for (int b = 0; b < BLOCKS; b++) {                                                     \
        fi_lanesv ln;                                                                      \
        fi_lanesv_seed(&ln, sigma, b0 + b, 0);                                             \
        FAST(&ln, z, rej[b]);                            /* (untimed: the block's z) */    \
        t0 = now_ns();                                                                     \
        fi_lanes_seed(&aux, sigma, b0 + b, 1);                                             \
        FIX(&aux, rej[b], z);                                                              \
        fix += now_ns() - t0;                                                              \
    }                                                                                      \
    t[1] = fix / BLOCKS;                                                                   \
    double whole = 0;                                                                      \
    for (int b = 0; b < BLOCKS; b++) {                                                     \
        t0 = now_ns();                                                                     \
        WHOLE(sigma, b0 + b, &pr, out, 0, FMT);                                            \
        whole += now_ns() - t0;                                                            \
        *hash = fnv1a(*hash, out, sizeof out);                                             \
    }                                                                                      \
    t[2] = whole / BLOCKS;                                                                 \
}

DEFINE_PARTS(parts32, float, fi_f32xv, 2 * FI_LANES, fi_normal_f32_fast_block,
             fi_normal_f32_fix_block, fi_normal_f32_whole, FI_OUT_F32)
DEFINE_PARTS(parts64, double, fi_f64xv, FI_LANES, fi_normal_f64_fast_block,
             fi_normal_f64_fix_block, fi_normal_f64_whole, FI_OUT_F64)

int main(int argc, char **argv)
{
    const int rounds = argc > 1 ? atoi(argv[1]) : 11, first = argc > 2 ? atoi(argv[2]) : 0;
    uint64_t hash = 0xcbf29ce484222325ULL, warm = 0;
    double t[3];
    parts32(0x5eed, 0, t, &warm);                        /* warm-up, not counted */
    parts64(0x5eed, 0, t, &warm);
    printf("{\"samples\": [");
    for (int r = 0; r < rounds; r++) {                 /* a new run of blocks each round */
        const uint64_t b0 = (uint64_t)(first + r) * BLOCKS;
        parts32(0x5eed, b0, t, &hash);
        printf("%s[%.1f, %.1f, %.1f", r ? ", " : "", t[0], t[1], t[2]);
        parts64(0x5eed, b0, t, &hash);
        printf(", %.1f, %.1f, %.1f]", t[0], t[1], t[2]);
    }
    printf("], \"hash\": \"%016llx\"}\n", (unsigned long long)hash);
    return 0;
}
"""


def target_features(src, path):
    """The instruction-set features fi_path_<path>.c compiles for (its `#pragma GCC
    target`; none for the baseline), named as /proc/cpuinfo names them."""
    text = (src / f"fi_path_{path}.c").read_text()
    found = re.search(r'^#pragma GCC target\("([^"]+)"\)', text, re.MULTILINE)
    return found.group(1).split(",") if found else []


def cpu_flags():
    with open("/proc/cpuinfo") as f:
        return next((line.split(":", 1)[1].split() for line in f
                     if line.startswith("flags")), [])


def build(src, path, out_dir):
    """The harness of ``path`` against the kernel sources in ``src``: an executable."""
    harness = out_dir / f"parts_{path}.c"
    features = target_features(src, path)
    pragma = f'#pragma GCC target("{",".join(features)}")' if features else ""
    harness.write_text(HARNESS.replace("@TARGET@", pragma))
    exe = out_dir / f"parts_{path}"
    sources = [str(harness)] + [str(src / name) for name in LIBRARY]
    subprocess.run(["gcc", *FLAGS, "-I", str(src), *sources, "-lm", "-o", str(exe)],
                   check=True)
    return exe


def ref_sources(ref, out_dir):
    """fastinit/src as of git revision ``ref``, extracted under out_dir."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "fastinit/src"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out_dir)], input=archive, check=True)
    return out_dir / "fastinit" / "src"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--rounds", type=int, default=201)
    parser.add_argument("--against", metavar="REF")
    args = parser.parse_args()
    if sys.platform != "linux" or platform.machine() != "x86_64":
        sys.exit("normal_parts: GCC on x86-64 Linux only")
    flags, paths = set(cpu_flags()), []
    for p in (p for p in args.paths.split(",") if p):
        missing = set(target_features(ROOT / "fastinit" / "src", p)) - flags
        if missing:
            print(f"skipped {p}: this CPU lacks {', '.join(sorted(missing))}")
        else:
            paths.append(p)
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": ROOT / "fastinit" / "src"}
        if args.against:
            (Path(tmp) / "ref").mkdir()
            trees[args.against] = ref_sources(args.against, Path(tmp) / "ref")
        exes = {}
        for name, src in trees.items():
            out = Path(tmp) / f"build{len(exes)}"
            out.mkdir()
            for p in paths:
                exes[name, p] = build(src, p, out)
        batches = min(args.rounds, 10)            # the trees and paths take turns
        samples = {key: [] for key in exes}
        hashes = {}
        for batch in range(batches):
            rounds = args.rounds // batches + (batch < args.rounds % batches)
            first = 1 + batch * (args.rounds // batches + 1)
            for key, exe in exes.items():
                run = subprocess.run([str(exe), str(rounds), str(first)], check=True,
                                     capture_output=True, text=True)
                result = json.loads(run.stdout)
                samples[key] += result["samples"]
                hashes.setdefault(batch, set()).add(result["hash"])
    medians = {key: [statistics.median(r[i] for r in rows) for i in range(6)]
               for key, rows in samples.items()}
    print(f"normal block parts, ns per block of 2,048 values (1 thread, in cache; "
          f"medians of {args.rounds} rounds of 16 blocks)")
    for p in paths:
        for d, dtype in enumerate(("float32", "float64")):
            print(f"  {p} {dtype}")
            for i, part in enumerate(PARTS):
                ns = {name: medians[name, p][3 * d + i] for name in trees}
                cells = [f"{name} {value:8.0f}" for name, value in ns.items()]
                if args.against:
                    cells.append(f"ratio {ns['this tree'] / ns[args.against]:.3f}")
                print(f"    {part:<12}" + "   ".join(cells))
    if any(len(h) != 1 for h in hashes.values()):
        print("the whole blocks' values differ between paths or trees", file=sys.stderr)
        sys.exit(1)
    print("the whole blocks' values are the same on every path and tree")


if __name__ == "__main__":
    main()
