"""Command line: ``python -m fastinit bench``, ``show-config`` and ``raw``."""

import argparse
import math
import os
import sys

import fastinit


def _count(text):
    """A whole number >= 1, written as an int or in float notation (1e6)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(value)


def _counts(text):
    """A comma-separated list of _count."""
    return [_count(part.strip()) for part in text.split(",")]


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an int") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is a non-negative int, got {value}")
    return value


def main(argv=None):
    """Run the command line; bad arguments exit with status 2 and a usage message,
    an output that cannot be written (a closed pipe, a full disk) with status 1 and
    one line on stderr."""
    try:
        if sys.stdout is None:                  # started with its standard output closed
            raise OSError("standard output is closed")
        _main(argv)
    except BrokenPipeError:
        # The reader went away (| head): the Python convention, quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as exc:
        if sys.stderr is not None:
            print(f"python -m fastinit: cannot write the output: {exc.strerror or exc}",
                  file=sys.stderr)
        sys.exit(1)


def _main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastinit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="throughput of fastinit's fills next to numpy and torch")
    bench.add_argument("--sizes", type=_counts, default="1e6,1e8,2.5e8",
                       help="comma-separated float32 element counts (default: %(default)s)")
    bench.add_argument("--threads", type=_counts, default=None,
                       help="comma-separated thread counts (default: 1 and all)")
    bench.add_argument("--repeat", type=_count, default=5, help="rounds (default: %(default)s)")
    bench.add_argument("--quick", action="store_true", help="small sizes, 3 rounds")
    sub.add_parser("show-config", help="print the build and run-time configuration")
    raw = sub.add_parser("raw", help="write the raw 64-bit stream to stdout, for test "
                                     "batteries (e.g. dieharder -g 200)")
    raw.add_argument("--seed", type=_seed, default=1)
    raw.add_argument("--control", choices=["weyl"],
                     help="write a deliberately weak stream instead (a Weyl sequence)")
    args = parser.parse_args(argv)

    if args.command == "show-config":
        fastinit.show_config()
        return
    if args.command == "raw":
        write_raw(args.seed, args.control)
        return
    from fastinit import _bench
    sizes, repeat = args.sizes, args.repeat
    init_shape, models_size = (16384, 16384), "953M"
    if args.quick:
        sizes, repeat, init_shape, models_size = [10**5, 10**6], 3, (1024, 1024), "29M"
        orthogonal_sizes = (256, 1000)
    else:
        orthogonal_sizes = (1000, 4096)
    all_threads = fastinit.get_num_threads()
    threads = args.threads or sorted({1, all_threads})
    _bench.run(sizes, threads, repeat, init_shape, models_size=models_size,
               orthogonal_sizes=orthogonal_sizes)


def write_raw(seed, control=None, chunk=1 << 20):
    """Write raw outputs to stdout until it closes: successive random_raw_ fills of
    ``chunk`` outputs (so the stream crosses block, lane and call boundaries), or,
    as a negative control, the Weyl sequence i * 0x9e3779b97f4a7c15."""
    import numpy as np

    out = sys.stdout.buffer
    g = fastinit.Generator(seed)
    buf = np.empty(chunk, np.uint64)
    weyl = np.arange(chunk, dtype=np.uint64)
    step = np.uint64(0x9E3779B97F4A7C15)
    try:
        while True:
            if control == "weyl":
                buf[...] = weyl * step
                weyl += np.uint64(chunk)
            else:
                g.random_raw_(buf)
            out.write(buf.tobytes())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
