# cython: language_level=3, cdivision=True
"""Fill requests, one function per distribution: each checks the distribution's
arguments against a target (fastinit/_checks.py) and gives the kernel to run and its
parameters, everything but the call seed, which the Generator adds when it takes
its call. float32 parameters are computed in float32, as the kernels use them."""

import math

from fastinit import _dtypes
from fastinit._checks import ArgumentError, check

from libc.math cimport INFINITY, isfinite, nextafter, nextafterf

from fastinit._plan cimport Target


cdef int _float_kind(Target t) except -1:
    return _dtypes.float_kind(t.kind)


# --------------------------------------------------------------------------------------
# Fill requests: each checks a distribution's arguments against the target and gives
# (kernel name, parameters) for ``submit``; the caller adds the call seed ``sigma``.
# --------------------------------------------------------------------------------------

def uniform_request(Target t, low, high):
    """Uniform values in [low, high).

    Raises ArgumentError (a RuntimeError, as torch's ``uniform_``, with its messages)
    when a bound lies outside the dtype's finite range (or is NaN), when low > high, or
    when high - low exceeds the dtype's largest finite value; and, past torch's
    checks, when high - low overflows in float32 for a float32 target. Nothing is
    written then. For float16 and
    bfloat16 the float32 values are capped below high rounded to the target, so
    that rounding to 16 bits keeps them below it.
    """
    cdef double lo = low, hi = high
    cdef float lo_f, hi_f, r_f, cap_f
    cdef int kind = _float_kind(t)
    dtype = _dtypes.BY_KIND[kind]
    check("uniform_", lo=lo, hi=hi, low=low, high=high, dtype=dtype)
    pr = dict(low=0.0, range=0.0, cap=0.0, low_f=0.0, range_f=0.0, cap_f=0.0)
    if kind == 1:
        pr["low"], pr["range"] = lo, hi - lo
        pr["cap"] = nextafter(hi, -INFINITY) if lo < hi else hi
    else:
        lo_f = <float>lo
        hi_f = <float>hi
        r_f = hi_f - lo_f
        if not isfinite(r_f):           # to - from in range in double, not in float32
            raise ArgumentError(f"uniform_ bounds from={low}, to={high} overflow float32")
        cap_f = nextafterf(hi_f, -INFINITY) if lo_f < hi_f else hi_f
        if kind >= 2:                    # (the checks keep the bounds within the dtype)
            lo_k, hi_k = _dtypes.round_to(lo_f, kind), _dtypes.round_to(hi_f, kind)
            below = _dtypes.next_toward(hi_k, kind, -math.inf) if lo_k < hi_k else hi_k
            cap_f = min(cap_f, <float>below)
        pr["low_f"], pr["range_f"], pr["cap_f"] = lo_f, r_f, cap_f
    return "uniform_" + dtype.name, pr


def normal_request(Target t, mean, std):
    """mean + std * z, z standard normal (the Ziggurat of docs/stream.md).

    ArgumentError (a ValueError and a RuntimeError, as torch raises), before anything
    is written, for std < 0 or NaN (torch's "normal expects std >= 0.0") and for a
    mean or std that is not finite in the target's dtype (which torch takes).
    float16 and bfloat16 round the float32 values.
    """
    cdef double m = mean, sd = std
    cdef float m_f = <float>m, sd_f = <float>sd
    cdef int kind = _float_kind(t)
    check("normal_", m=m, sd=sd, mean=mean, std=std)
    if kind != 1 and not (isfinite(m_f) and isfinite(sd_f)):
        raise ArgumentError(f"normal mean={mean}, std={std} overflow float32")
    if sd == 0:
        return "constant", dict(bits=_dtypes.bits(m if kind == 1 else m_f, kind))
    return "normal_" + _dtypes.BY_KIND[kind].name, dict(mean=m, std=sd, mean_f=m_f, std_f=sd_f)


def _normal_cdf(x):
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def trunc_normal_request(Target t, mean, std, a, b):
    """normal(mean, std) values conditioned on [a, b] (docs/stream.md).

    Exact rejection sampling from block-local streams: normal proposals when the
    interval holds more than 30% of the mass (as torch decides), uniform proposals
    on [a, b] otherwise, so narrow intervals and small std stay fast and exact.
    Values are mean + std * z rounded to the dtype and clipped to the values of the
    dtype inside [a, b], so they never leave [a, b].

    ArgumentError (a ValueError and a RuntimeError) for a > b, std < 0, non-finite
    arguments, or an [a, b] that holds no value of the dtype.
    std == 0 fills with mean clipped to [a, b].
    """
    return trunc_normal_request_of_kind(_float_kind(t), mean, std, a, b)


def trunc_normal_request_of_kind(int kind, mean, std, a, b):
    """trunc_normal_request for a target of the dtype numbered ``kind``: pure, so it
    also tells whether fastinit takes the arguments (``patch_init`` hands those it
    refuses to torch's own trunc_normal_)."""
    cdef double m = mean, sd = std, lo = a, hi = b, alpha = 0.0, beta = 0.0
    dtype = _dtypes.BY_KIND[kind]
    check("trunc_normal_", m=m, sd=sd, lo=lo, hi=hi, mean=mean, std=std, a=a, b=b)
    lo_k, hi_k = _dtypes.round_to(lo, kind), _dtypes.round_to(hi, kind)
    if lo_k < lo:
        lo_k = _dtypes.next_toward(lo_k, kind, math.inf)
    if hi_k > hi:
        hi_k = _dtypes.next_toward(hi_k, kind, -math.inf)
    if not lo_k <= hi_k:
        raise ArgumentError(f"[{a}, {b}] holds no {dtype.name} value")
    if sd > 0:
        alpha, beta = (lo - m) / sd, (hi - m) / sd
    if sd == 0 or lo == hi or (alpha == beta and not isfinite(alpha)):
        # No spread, or [a, b] beyond DBL_MAX standard deviations from the mean: the
        # value of the target nearest the mean inside [a, b].
        return "constant", dict(bits=_dtypes.bits(min(max(m, lo_k), hi_k), kind))
    mode, rate = _trunc_mode(alpha, beta)
    return "trunc_normal_" + dtype.name, dict(
        mean=m, std=sd, alpha=alpha, beta=beta, lo_clip=lo_k, hi_clip=hi_k, rate=rate,
        mode=mode)


def _trunc_mode(double alpha, double beta):
    """(mode, rate) for standardized bounds: normal proposals (0) when [alpha, beta]
    holds more than 30% of the mass (torch's threshold); for an interval within one
    tail, exponential proposals (2) when it is wider than Robert's (1995) bound,
    uniform proposals (1) otherwise (and for narrow intervals around 0). In the far
    tail, where the near end's square overflows, always exponential proposals at the
    rate of the near end (each is then accepted: no overflowing arithmetic)."""
    if _normal_cdf(beta) - _normal_cdf(alpha) > 0.3:
        return 0, 0.0
    if alpha >= 0 or beta <= 0:
        lo, hi = (alpha, beta) if alpha >= 0 else (-beta, -alpha)
        if lo * lo == math.inf:
            return 2, lo
        root = math.sqrt(lo * lo + 4.0)
        bound = 2.0 * math.sqrt(math.e) / (lo + root) * math.exp((lo * lo - lo * root) / 4.0)
        if hi - lo > bound:
            return 2, (lo + root) / 2.0
    return 1, 0.0


def raw_request(Target t):
    """The stream's raw 64-bit outputs, into a uint64 target (float64's layout)."""
    if t.kind != 4:
        raise TypeError(f"random_raw_ fills uint64 arrays, not {_dtypes.BY_KIND[t.kind].name}")
    return "raw_uint64", {}


def constant_request(Target t, value):
    """``value`` rounded to the target's dtype; ArgumentError for a finite value beyond
    the dtype's range (torch's check; see fastinit/_checks.py)."""
    cdef int kind = _float_kind(t)
    if isinstance(value, (str, bytes)):
        raise TypeError(f"constant value must be a real number, got {type(value).__name__}")
    number = complex(value) if isinstance(value, complex) else complex(float(value), 0.0)
    check("constant_", v=number.real, imag=number.imag, dtype=_dtypes.BY_KIND[kind])
    return "constant", dict(bits=_dtypes.bits(number.real, kind))
