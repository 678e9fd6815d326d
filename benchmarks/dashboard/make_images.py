"""Make the README's two pictures from one real run of the asv suite.

    python benchmarks/dashboard/make_images.py            # run, publish, render, plot
    python benchmarks/dashboard/make_images.py --no-run   # reuse the results of HEAD

1. Runs the suite as ``asv run`` does, building the checked-out commit in asv's
   virtualenv, each benchmark measured once but recorded: the float32 slice of
   the grid and the models (13 minutes on 2 cores), or with ``--all`` every dtype
   (about 50). Then, for the dashboard's history, the benchmark it
   shows on the ``--history`` commits before (each built in turn).
2. Publishes the dashboard (``asv publish``) and renders that graph, uniform fill
   throughput of fastinit and its peers commit by commit, in headless Chromium to
   ``docs/img/asv-dashboard.png``. The published page loads its JavaScript from
   CDNs; this machine may be offline, so the libraries come from the npm registry
   (``package.json`` beside this file) and are served from localhost with the page.
3. Plots throughput against array size for fastinit and its peers from the same
   results, with matplotlib, to ``docs/img/throughput.png``.

Needs: asv, matplotlib, npm, and Chromium (Debian: ``apt-get install chromium``).
"""

import argparse
import ast
import functools
import http.server
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
IMAGES = ROOT / "docs" / "img"

# One measurement per benchmark, but recorded (asv does not save --quick runs).
QUICK = ["-a", "rounds=1", "-a", "repeat=1", "-a", "warmup_time=0"]

# Without --all: the combinations with a float32 parameter, and the benchmarks
# with no dtype (the GPT-2 set is float32, as torch builds it; the import time).
FLOAT32 = ["'float32'", "^models\\.", "^imports\\."]

# The CDN files asv's index.html loads -> the same libraries' files in node_modules.
VENDORED = {
    "jquery-3.3.1.min.js": "jquery/dist/jquery.min.js",
    "jquery.flot.min.js": "flot/jquery.flot.js",
    "jquery.flot.time.min.js": "flot/jquery.flot.time.js",
    "jquery.flot.selection.min.js": "flot/jquery.flot.selection.js",
    "jquery.flot.categories.min.js": "flot/jquery.flot.categories.js",
    "jquery.flot.orderBars.js": "flot-orderbars/js/jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupid-table-plugin/stupidtable.min.js",
    "md5.min.js": "blueimp-md5/js/md5.min.js",
    "bootstrap.min.js": "bootstrap/dist/js/bootstrap.min.js",
    "bootstrap.min.css": "bootstrap/dist/css/bootstrap.min.css",
}

# The dashboard view to render: GB/s (log scale) of uniform fills of 1e8 float32 elements,
# every contender and thread count, commit by commit. (Plotting against size puts
# each contender's bars at its own offsets in asv 0.6: the matplotlib plot does that.)
GRAPH_BENCHMARK, GRAPH_SIZE, GRAPH_DTYPE = "fills.Uniform.track_gbps", "1e8", "float32"
GRAPH = f"{GRAPH_BENCHMARK}?p-size='{GRAPH_SIZE}'&p-dtype='{GRAPH_DTYPE}'&y-axis-scale=log"

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def asv(*args):
    print("+ asv " + " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "asv", *args], cwd=ROOT, check=True)


def head_commit():
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def run_suite(selection, history):
    asv("machine", "--yes")
    asv("run", "HEAD^!", *QUICK, *[arg for regex in selection for arg in ("--bench", regex)])
    if history > 0:
        graph = re.escape(f"{GRAPH_BENCHMARK}(") + f"'[^']*', '{GRAPH_SIZE}', '{GRAPH_DTYPE}'"
        asv("run", f"HEAD~{history + 1}..HEAD~1", *QUICK, "--bench", graph)


# --------------------------------------------------------------------------------------
# The dashboard screenshot
# --------------------------------------------------------------------------------------

def offline_index(text):
    """asv's index.html with its CDN <script> and <link> tags pointing at the local
    copies under vendor/ (the integrity hashes, of the CDNs' builds, dropped)."""
    def local(match):
        url = match.group(2)
        name = url.rsplit("/", 1)[-1]
        if name not in VENDORED:
            raise SystemExit(f"asv's page loads {url}, which has no local copy: add it to "
                             f"VENDORED and package.json in {HERE}")
        return f'{match.group(1)}"vendor/{VENDORED[name]}"'

    text = re.sub(r'(<(?:script|link)\b[^>]*?\b(?:src|href)=)"(https?://[^"]+)"', local, text)
    return re.sub(r'\s(?:integrity|crossorigin|referrerpolicy)="[^"]*"', "", text)


def vendor_libraries(html_dir):
    """Install the dashboard's libraries from npm and make the page load them."""
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(HERE)],
                   check=True)
    shutil.copytree(HERE / "node_modules", html_dir / "vendor", dirs_exist_ok=True)
    index = html_dir / "index.html"
    index.write_text(offline_index(index.read_text()))


def screenshot(html_dir, out, chromium):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/#{GRAPH}"
    try:
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                            "--window-size=1400,900", "--virtual-time-budget=20000",
                            f"--screenshot={out}", url], check=True, timeout=300,
                           capture_output=True)
    finally:
        server.shutdown()
    print(f"wrote {out} ({url})")


# --------------------------------------------------------------------------------------
# The throughput plot
# --------------------------------------------------------------------------------------

def load_results(commit):
    """{benchmark name: {parameter tuple: value}} of ``commit`` on this machine, as
    measured in asv's own environments."""
    from asv import config, results
    from asv.machine import Machine

    conf = config.Config.load(str(ROOT / "asv.conf.json"))
    machine = Machine.get_unique_machine_name()
    values = {}
    for res in results.iter_results_for_machine_and_hash(conf.results_dir, machine, commit):
        if res.env_name.startswith("existing-"):          # an `asv run --python=same`
            continue
        for key in res.get_all_result_keys():
            params = res.get_result_params(key)
            combos = [()]
            for values_of_param in params:
                combos = [c + (v,) for c in combos for v in values_of_param]
            for combo, value in zip(combos, res.get_result_value(key, params)):
                if value is not None and value == value:            # not n/a, not NaN
                    values.setdefault(key, {})[tuple(map(ast.literal_eval, combo))] = value
    if not values:
        raise SystemExit(f"no asv results for {commit} on machine {machine}")
    return values


# (label, contender, threads, line style) for each curve, fastinit first.
CURVES = [
    ("fastinit, all threads", "fastinit", "all", dict(color="C0", lw=2.5, marker="o")),
    ("fastinit, 1 thread", "fastinit", "1", dict(color="C0", lw=1.2, ls="--", marker="o")),
    ("torch, all threads", "torch", "all", dict(color="C3", lw=1.5, marker="s")),
    ("numpy PCG64, 1 thread", "numpy", "1", dict(color="C2", lw=1.5, marker="^")),
    ("ndarray.fill, 1 thread", "ndarray.fill", "1", dict(color="0.45", lw=1.2, ls=":",
                                                          marker="x")),
]


def plot(values, out, dtype="float32", machine=""):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fills = [("Uniform", "uniform U(0, 1)"), ("Normal", "normal N(0, 1)"),
             ("TruncNormal", "truncated normal on [-2, 2]")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), sharey=True)
    for ax, (name, title) in zip(axes, fills):
        gbps = values.get(f"fills.{name}.track_gbps", {})
        for label, contender, threads, style in CURVES:
            points = sorted((float(size), v) for (c, size, d, t), v in gbps.items()
                            if (c, d, t) == (contender, dtype, threads))
            if points:
                ax.plot(*zip(*points), label=label, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")                       # ratios read as distances
        ax.set_title(f"{title}, {dtype}")
        ax.set_xlabel("elements")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("GB/s written")
    axes[0].legend(loc="lower right", fontsize=9)
    fig.suptitle(f"Fill throughput against array size (asv, one run; {machine})", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def machine_description():
    from fastinit import build_info
    cpu = next((line.split(":", 1)[1].strip() for line in
                pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown CPU")
    return f"{cpu}, {os.cpu_count()} CPUs, fastinit SIMD path {build_info()['simd_path']}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-run", action="store_true",
                        help="reuse the recorded results of HEAD instead of running the suite")
    parser.add_argument("--all", action="store_true", help="run every dtype, not only float32")
    parser.add_argument("--history", type=int, default=8,
                        help="commits before HEAD to measure for the graph (default: %(default)s)")
    parser.add_argument("--bench", action="append",
                        help="run the benchmarks matching this regex instead (repeatable)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args(argv)

    commit = head_commit()
    if not args.no_run:
        run_suite(args.bench or ([] if args.all else FLOAT32), args.history)
    asv("publish")
    html_dir = ROOT / ".asv" / "html"
    vendor_libraries(html_dir)
    IMAGES.mkdir(parents=True, exist_ok=True)
    screenshot(html_dir, IMAGES / "asv-dashboard.png", args.chromium)
    plot(load_results(commit), IMAGES / "throughput.png", machine=machine_description())


if __name__ == "__main__":
    main()
