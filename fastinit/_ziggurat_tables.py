"""The Ziggurat tables for the normal distribution, from their closed form.

256 layers of equal area v cover f(x) = exp(-x^2/2) on x >= 0 (Marsaglia and Tsang,
2000). The only input is the outermost boundary r; everything else follows:

    v       = r f(r) + integral_r^inf f(t) dt          (the area of every layer)
    x[255]  = r,  x[i] = sqrt(-2 ln(v / x[i+1] + f(x[i+1])))   for i = 254 .. 1
    x[0]    = v / f(r)   (the width of the base layer's rectangle, tail included)

All of it is computed in 60-digit decimal arithmetic (correctly rounded exp, ln and
sqrt), then rounded once to binary64 / binary32, so the tables are the same on
every machine. Run this module to rewrite src/fi_ziggurat_tables.h; the tests regenerate the
text and compare.

Tables, for layer i (candidate magnitude m bits: 52 for float64, 23 for float32):

    W[i] = x[i] / 2^m                              the magnitude's scale
    K[i] = floor(x[i-1] / x[i] * 2^m)  (i >= 2),   K[1] = 0,   K[0] = floor(r / x[0] * 2^m)
    F[i] = f(x[i])  (i >= 1),   F[0] = 1           the density at the layer boundaries
"""

from decimal import Decimal, getcontext
from fractions import Fraction
from pathlib import Path

import numpy as np

LAYERS = 256
R = Decimal("3.6541528853610088")   # Marsaglia and Tsang's r for 256 layers


def _tail_area(r):
    """integral_r^inf exp(-t^2/2) dt by Laplace's continued fraction, r > 0."""
    # exp(-r^2/2) / (r + 1/(r + 2/(r + 3/(r + ...)))), evaluated from the bottom.
    cf = r
    for k in range(2000, 0, -1):
        cf = r + k / cf
    return (-r * r / 2).exp() / cf


def boundaries():
    """(x[0..255], v) as Decimals."""
    getcontext().prec = 60

    def f(x):
        return (-x * x / 2).exp()

    v = R * f(R) + _tail_area(R)
    x = [Decimal(0)] * LAYERS
    x[LAYERS - 1] = R
    for i in range(LAYERS - 2, 0, -1):
        x[i] = (-2 * (v / x[i + 1] + f(x[i + 1])).ln()).sqrt()
    x[0] = v / f(R)
    return x, v


def _round_up(d):
    """The smallest binary64 value >= Decimal d."""
    up = float(d)
    return up if Fraction(up) >= Fraction(d) else float(np.nextafter(up, np.inf))


def _to_float32(d):
    """The binary32 value nearest to Decimal d (ties to even), without double rounding."""
    exact = Fraction(d)
    guess = np.float32(float(d))
    best = None
    for c in (np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))):
        err = abs(Fraction(float(c)) - exact)
        key = (err, int(np.frombuffer(c.tobytes(), np.uint32)[0]) & 1)
        if best is None or key < best[0]:
            best = (key, c)
    return best[1]


def tables():
    """The tables as Python values: dict of W64, K64, W32, K32, F (lists of 256)."""
    x, _ = boundaries()

    def ratio(i, bits):
        inner = R if i == 0 else (Decimal(0) if i == 1 else x[i - 1])
        return int((inner / x[i] * 2**bits).to_integral_value(rounding="ROUND_FLOOR"))

    getcontext().prec = 60
    return {
        "W64": [float(x[i] / 2**52) for i in range(LAYERS)],
        "K64": [ratio(i, 52) for i in range(LAYERS)],
        "W32": [float(_to_float32(x[i] / 2**23)) for i in range(LAYERS)],
        "K32": [ratio(i, 23) for i in range(LAYERS)],
        "F": [1.0] + [float((-x[i] * x[i] / 2).exp()) for i in range(1, LAYERS)],
    }


# How far a wedge candidate's x may stray outside its layer's [x[i-1], x[i]]: below
# by one step of the magnitude (x[i] 2^-23 for float32), above by float32 rounding
# (x[i] 2^-24); bounded by 2^-20 (x <= r < 4). And the slack for the rounding of
# the run-time parabola, of y, of -x*x/2 and of exp_d (each below 1e-14 here).
_STRAY = Decimal(2) ** -20
_SLACK = Decimal("1e-13")


def _f3_bound(lo, hi):
    """An upper bound of |f3(t)| on [lo, hi] (0 <= lo), f3 = f''' = t (3 - t^2) f: f3
    is monotone between its extremes, where f'''' = (t^4 - 6 t^2 + 3) f vanishes
    (t^2 = 3 -+ sqrt(6)), so its largest magnitude is at an end or at one of those
    inside. Rounded up."""
    six = Decimal(6).sqrt()
    points = [lo, hi] + [t for t in ((3 - six).sqrt(), (3 + six).sqrt()) if lo < t < hi]
    return max(abs(t * (3 - t * t) * (-t * t / 2).exp()) for t in points) * Decimal("1.000001")


def wedge_squeeze():
    """The wedge's squeeze, for layer i >= 1: the parabola q through f at the wedge's
    ends xl = x[i-1] (0 for layer 1), xr = x[i] and their midpoint, in Newton form

        q(t) = f(xl) + (t - xl) (SLOPE + CURVE (t - xr))

    (SLOPE and CURVE: f's divided differences on xl, xr and on xl, xr, midpoint), and
    GAP[i] >= |f(t) - q(t)| for every t the layer's wedge can test, with room for
    run-time rounding. By the interpolation remainder f(t) - q(t) = f3(s)/6 w(t) for
    some s between t and the nodes, with w(t) = (t - xl)(t - mid)(t - xr); for t up
    to _STRAY = d beyond either end, |f3(s)| <= M3 = _f3_bound(xl - d, xr + d) and
    |w| <= max(h^3 / (12 sqrt 3), (h + d)(h/2 + d) d) (h = xr - xl). So GAP = M3/6
    max|w| + _SLACK. (The chord, the previous squeeze, left 13% of the float32 wedge
    tests to exp, nearly all in layer 1, where f bends most against its small drop;
    the parabola leaves 0.13%.) Returns (XL, XR, SLOPE, CURVE, GAP) as lists of 256
    Decimals (layer 0 unused)."""
    x, _ = boundaries()
    getcontext().prec = 60

    def f(t):
        return (-t * t / 2).exp()

    columns = [[Decimal(0)] for _ in range(5)]
    for i in range(1, LAYERS):
        xl, xr = (Decimal(0) if i == 1 else x[i - 1]), x[i]
        mid, h, d = (xl + xr) / 2, xr - xl, _STRAY
        slope = (f(xr) - f(xl)) / h
        curve = ((f(mid) - f(xr)) / (mid - xr) - slope) / (mid - xl)
        w_max = max(h ** 3 / (12 * Decimal(3).sqrt()), (h + d) * (h / 2 + d) * d)
        m3 = _f3_bound(max(xl - d, Decimal(0)), xr + d)
        gap = m3 / 6 * w_max * Decimal("1.000001") + _SLACK
        for column, value in zip(columns, (xl, xr, slope, curve, gap)):
            column.append(value)
    return tuple(columns)


def header_text():
    """The C header holding the tables, as written to fastinit/src/fi_ziggurat_tables.h."""
    t = tables()
    _, v = boundaries()
    lines = [
        "/* Ziggurat tables for the normal distribution: 256 layers, r = 3.6541528853610088.",
        " * Generated by fastinit/_ziggurat_tables.py; do not edit. See docs/stream.md. */",
        "#ifndef FI_ZIGGURAT_TABLES_H",
        "#define FI_ZIGGURAT_TABLES_H",
        "#include <stdint.h>",
        "",
        f"#define FI_ZIG_R {float(R).hex()}",
        f"#define FI_ZIG_INV_R {(1 / float(R)).hex()}",
        f"/* layer area v = {v:.25e} */",
        "",
        "static const double FI_ZIG64_W[256] = {",
    ]
    lines += [f"    {w.hex()}," for w in t["W64"]]
    lines += ["};", "", "static const uint64_t FI_ZIG64_K[256] = {"]
    lines += [f"    {k}u," for k in t["K64"]]
    lines += ["};", "", "static const float FI_ZIG32_W[256] = {"]
    lines += [f"    {w.hex()}f," for w in t["W32"]]
    lines += ["};", "", "static const uint32_t FI_ZIG32_K[256] = {"]
    lines += [f"    {k}u," for k in t["K32"]]
    lines += ["};", "", "static const double FI_ZIG_F[256] = {"]
    lines += [f"    {f.hex()}," for f in t["F"]]
    lines += ["};", "",
              "/* The same W and K packed by layer, for the vector kernels' look-ups (one load",
              " * per candidate): float32 as K_23[i] << 32 | the bits of W_23[i]; float64 as",
              " * {W_52[i], K_52[i]}. */",
              "static const uint64_t FI_ZIG32_WK[256] __attribute__((aligned(64))) = {"]
    lines += [f"    0x{(k << 32) | int(np.float32(w).view(np.uint32)):016x}u,"
              for w, k in zip(t["W32"], t["K32"])]
    lines += ["};", "", "typedef struct { double w; uint64_t k; } fi_zig64_layer;",
              "static const fi_zig64_layer FI_ZIG64_WK[256] __attribute__((aligned(64))) = {"]
    lines += [f"    {{{w.hex()}, {k}u}}," for w, k in zip(t["W64"], t["K64"])]
    lines += ["};", ""]
    lines += _byte_planes(
        "FI_ZIG32_PLANES",
        "W_23 and K_23 again as byte planes, for look-ups of 64 layers at once by byte\n"
        " * permutes (AVX-512 VBMI): plane b holds byte b of every entry, for b = 0..3 the\n"
        " * bits of W_23[i] * 2^-9 (exact: the kernel multiplies it by the candidate with\n"
        " * its 9 low bits cleared, m * 2^9, so the product is m * W_23[i]), for b = 4, 5\n"
        " * the top 16 of K_23's 23 bits, K_23[i] >> 7: a candidate whose magnitude's top\n"
        " * 16 bits are below them is accepted, above them rejected, equal (one in 65536)\n"
        " * left to the fix-up's full test.",
        [int((np.float32(w) * np.float32(2.0 ** -9)).view(np.uint32)) for w in t["W32"]], 4,
        [k >> 7 for k in t["K32"]], 2)
    lines += _byte_planes(
        "FI_ZIG64_PLANES",
        "W_52 likewise, as W_52[i] * 2^-12 (b = 0..7), and the top 16 of K_52's 52 bits,\n"
        " * K_52[i] >> 36 (b = 8, 9).",
        [int((np.float64(w) * 2.0 ** -12).view(np.uint64)) for w in t["W64"]], 8,
        [k >> 36 for k in t["K64"]], 2)
    xl, xr, slope, curve, gap = wedge_squeeze()
    lines += ["/* The wedge's squeeze (wedge_squeeze in the generator): for layer i >= 1,",
              " * every x its wedge tests has |f(x) - (F[i-1] + (x - XL[i]) (SLOPE[i] +",
              " * CURVE[i] (x - XR[i])))| <= GAP[i], run-time rounding included. */",
              "typedef struct { double xl, xr, slope, curve, gap; } fi_zig_squeeze;",
              "static const fi_zig_squeeze FI_ZIG_SQUEEZE[256] = {"]
    lines += [f"    {{{float(a).hex()}, {float(b).hex()}, {float(c).hex()}, {float(e).hex()}, "
              f"{_round_up(g).hex()}}},"
              for a, b, c, e, g in zip(xl, xr, slope, curve, gap)]
    lines += ["};", "", "#endif /* FI_ZIGGURAT_TABLES_H */", ""]
    return "\n".join(lines)


def _byte_planes(name, comment, w_bits, w_bytes, k, k_bytes):
    """A C table of byte planes: byte b of each W entry's bits, then of each K entry."""
    assert all(v < 2 ** (8 * w_bytes) for v in w_bits) and all(v < 2 ** (8 * k_bytes) for v in k)
    planes = [[(v >> (8 * b)) & 255 for v in w_bits] for b in range(w_bytes)]
    planes += [[(v >> (8 * b)) & 255 for v in k] for b in range(k_bytes)]
    lines = [f"/* {comment} */",
             f"static const uint8_t {name}[{len(planes)}][256] __attribute__((aligned(64))) = {{"]
    for plane in planes:
        lines.append("    {")
        lines += ["        " + ", ".join(f"0x{v:02x}" for v in plane[i:i + 16]) + ","
                  for i in range(0, 256, 16)]
        lines.append("    },")
    return lines + ["};", ""]


HEADER = Path(__file__).parent / "src" / "fi_ziggurat_tables.h"

if __name__ == "__main__":
    HEADER.write_text(header_text())
    print(f"wrote {HEADER}")
