"""The distributions' parameter checks, declared once: for each fill, its conditions in
order, each with the message torch (or numpy) gives when it fails. ``check`` raises
the first failure as an ArgumentError, before anything is written or any call taken.

Conditions see the arguments as doubles (``lo``, ``hi``, ``m``, ``sd``...) and the
target's DType (``dtype``); messages show numbers as torch's C++ prints a double
(``%g``: ``from=1``, ``std -0.5``, ``1e+06``)."""

import math
from numbers import Real


class ArgumentError(ValueError, RuntimeError):
    """A distribution parameter out of its domain (low > high, std < 0, NaN, ...).

    Both a ValueError, as numpy would raise, and a RuntimeError, as torch raises for
    the same calls, so either ``except`` clause catches it.
    """


def _finite(mean, std):
    return math.isfinite(mean) and math.isfinite(std)


CHECKS = {
    # torch's checks in torch's order: each bound within the dtype's finite range (so
    # not NaN), from <= to, and to - from (in double) at most the dtype's largest value.
    "uniform_": (
        (lambda a: -a["dtype"].max <= a["lo"] <= a["dtype"].max,
         "from is out of bounds for {dtype.torch_name}"),
        (lambda a: -a["dtype"].max <= a["hi"] <= a["dtype"].max,
         "to is out of bounds for {dtype.torch_name}"),
        (lambda a: a["lo"] <= a["hi"],
         "uniform_ expects to return a [from, to) range, but found from={low} > to={high}"),
        (lambda a: a["hi"] - a["lo"] <= a["dtype"].max,
         "uniform_ expects to-from <= std::numeric_limits<{dtype.torch_type}>::max(), but "
         "found to={high} and from={low} which result in to-from to exceed the limit"),
    ),
    # torch's one check first (std >= 0, which a NaN std fails too); then fastinit's
    # own: torch takes an infinite std or a NaN or infinite mean, fastinit refuses them.
    "normal_": (
        (lambda a: a["sd"] >= 0, "normal expects std >= 0.0, but found std {std}"),
        (lambda a: _finite(a["m"], a["sd"]),
         "normal expects a finite mean and std, got mean={mean}, std={std}"),
    ),
    "trunc_normal_": (
        # a and b may be infinite (a half-line, or the whole line: a normal fill).
        (lambda a: _finite(a["m"], a["sd"]) and not (math.isnan(a["lo"]) or math.isnan(a["hi"])),
         "trunc_normal_ expects a finite mean and std and bounds a, b that are not NaN, "
         "got {mean}, {std}, {a}, {b}"),
        (lambda a: a["sd"] >= 0, "trunc_normal_ expects std >= 0.0, but found std {std}"),
        (lambda a: a["lo"] <= a["hi"],
         "uniform_ expects to return a [from, to) range, but found from={a} > to={b}"),
    ),
    # As torch's fill_: infinities and NaN are values; a finite value beyond the
    # dtype's range, or a complex value (real part v, imaginary part imag) that is not
    # real, is an overflow.
    "constant_": (
        (lambda a: a["imag"] == 0 and not (math.isfinite(a["v"])
                                           and abs(a["v"]) > a["dtype"].max),
         "value cannot be converted to type {dtype.torch_name} without overflow"),
    ),
}


def check(fill, **args):
    """Raise ArgumentError for the first of ``fill``'s conditions that ``args`` fail."""
    for holds, message in CHECKS[fill]:
        if not holds(args):
            shown = {k: format(float(v), "g") if isinstance(v, Real) else v   # True: 1
                     for k, v in args.items()}
            raise ArgumentError(message.format(**shown))
