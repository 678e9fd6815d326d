"""Command line: ``python -m fastinit bench`` and ``python -m fastinit show-config``."""

import argparse

import fastinit


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastinit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="throughput of fastinit's fills next to numpy and torch")
    bench.add_argument("--sizes", default="1e6,1e8,2.5e8",
                       help="comma-separated float32 element counts (default: %(default)s)")
    bench.add_argument("--threads", default=None,
                       help="comma-separated thread counts (default: 1 and all)")
    bench.add_argument("--repeat", type=int, default=5, help="rounds (default: %(default)s)")
    bench.add_argument("--quick", action="store_true", help="small sizes, 3 rounds")
    sub.add_parser("show-config", help="print the build and run-time configuration")
    args = parser.parse_args(argv)

    if args.command == "show-config":
        fastinit.show_config()
        return
    from fastinit import _bench
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    repeat = args.repeat
    init_shape = (16384, 16384)
    if args.quick:
        sizes, repeat, init_shape = [10**5, 10**6], 3, (1024, 1024)
    all_threads = fastinit.get_num_threads()
    if args.threads:
        threads = [int(t) for t in args.threads.split(",")]
    else:
        threads = sorted({1, all_threads})
    _bench.run(sizes, threads, repeat, init_shape)


if __name__ == "__main__":
    main()
