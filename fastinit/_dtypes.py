"""The dtypes fastinit fills, in one place: their names, the kernels' number for
each (``kind``), widths, largest finite values and torch's names for them, and
rounding to them. 16-bit values round through float32, as the kernels do
(docs/stream.md, section 7)."""

import math
import struct
from typing import NamedTuple

import numpy as np


class DType(NamedTuple):
    name: str           # as numpy and the kernel names (fastinit/src/fi_kernels.h) spell it
    kind: int           # the number _fill.Target gives it
    itemsize: int
    max: float          # the largest finite value
    torch_name: str     # torch's messages: its C++ type ("... out of bounds for float")
    torch_type: str     # and its scalar type ("std::numeric_limits<Float>")


FLOAT32 = DType("float32", 0, 4, float(np.finfo(np.float32).max), "float", "Float")
FLOAT64 = DType("float64", 1, 8, float(np.finfo(np.float64).max), "double", "Double")
FLOAT16 = DType("float16", 2, 2, 65504.0, "c10::Half", "Half")
BFLOAT16 = DType("bfloat16", 3, 2, 3.3895313892515355e38, "c10::BFloat16", "BFloat16")
UINT64 = DType("uint64", 4, 8, math.inf, "uint64_t", "UInt64")          # raw outputs only
BY_KIND = (FLOAT32, FLOAT64, FLOAT16, BFLOAT16, UINT64)

UNSUPPORTED = "expected float16, bfloat16, float32 or float64"


def float_kind(kind):
    """``kind``, if it is a floating one (every initializer's targets); TypeError for
    uint64, which only ``random_raw_`` fills."""
    if kind == UINT64.kind:
        raise TypeError(f"unsupported dtype uint64; {UNSUPPORTED} (uint64 arrays take "
                        "random_raw_)")
    return kind


def torch_dtypes(torch):
    """torch's floating dtypes -> the DType fastinit fills them as (_targets keeps the
    one it makes)."""
    return {torch.float32: FLOAT32, torch.float64: FLOAT64, torch.float16: FLOAT16,
            torch.bfloat16: BFLOAT16}


_F32, _U32 = struct.Struct("<f"), struct.Struct("<I")
_F64, _U64 = struct.Struct("<d"), struct.Struct("<Q")


def _float32_bits(x):
    """``x`` rounded to float32 (to nearest even; beyond its range, an infinity) as its
    bit pattern, an int. (struct, not numpy: a few microseconds less per call.)"""
    x = float(x)
    try:
        return _U32.unpack(_F32.pack(x))[0]
    except OverflowError:                   # finite, but rounds beyond float32's range
        return 0x7F800000 if x > 0 else 0xFF800000


def _from_float32_bits(b):
    return _F32.unpack(_U32.pack(b))[0]


def round_to(x, kind):
    """``x`` rounded to nearest (even) in the kind's format, as a Python float; beyond
    the kind's range, an infinity (without numpy's overflow warning)."""
    if kind == FLOAT64.kind:
        return float(x)
    if kind == FLOAT32.kind:
        return _from_float32_bits(_float32_bits(x))
    if kind == BFLOAT16.kind:
        b = _float32_bits(x)
        if (b & 0x7FFFFFFF) > 0x7F800000:
            return math.nan
        return _from_float32_bits(_bfloat16_round(b) << 16)
    with np.errstate(over="ignore"):
        return float(np.float16(np.float32(x)))


def next_toward(x, kind, direction):
    """The neighbour of ``x`` (a value of the kind) towards ``direction`` (+-inf)."""
    if kind == FLOAT64.kind:
        return float(np.nextafter(x, direction))
    if kind == FLOAT32.kind:
        return float(np.nextafter(np.float32(x), np.float32(direction)))
    if kind == FLOAT16.kind:
        return float(np.nextafter(np.float16(x), np.float16(direction)))
    bits = _float32_bits(x) >> 16                           # bfloat16: step the top half
    if x == 0:
        bits = 0x0001 if direction > 0 else 0x8001
    elif (x > 0) == (direction > 0):
        bits += 1
    else:
        bits -= 1
    return _from_float32_bits(bits << 16)


def bits(value, kind):
    """The bit pattern of ``value`` in the kind's format, as an int. (float32 and
    float64 by struct: a microsecond less than numpy's scalars, a sixth of a zeros_
    call on a small tensor.)"""
    if kind == FLOAT32.kind:
        return _float32_bits(value)
    if kind == FLOAT64.kind:
        return _U64.unpack(_F64.pack(float(value)))[0]
    if kind == BFLOAT16.kind:
        b = _float32_bits(value)
        return 0x7FC0 if (b & 0x7FFFFFFF) > 0x7F800000 else _bfloat16_round(b)  # NaN: torch's
    with np.errstate(over="ignore"):
        f = np.float32(value)
        if f != f:                          # a NaN: its sign and float16's quiet NaN, as torch
            return (int(f.view(np.uint32)) >> 16 & 0x8000) | 0x7E00
        return int(f.astype(np.float16).view(np.uint16))


def _bfloat16_round(b):
    """A float32 bit pattern (an int, not a NaN's) rounded to bfloat16, to nearest
    even, as an int: bfloat16_bits for one value, in Python integers (the array
    version cost 10 us a call, twice per bfloat16 fill's arguments)."""
    return (b + 0x7FFF + ((b >> 16) & 1)) >> 16


def bfloat16_bits(values):
    """float32 values (an array or a scalar) rounded to bfloat16, to nearest even, as
    uint16 bit patterns; a NaN stays a quiet NaN."""
    b = np.asarray(values, np.float32).view(np.uint32)
    rounded = ((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1)))
               >> np.uint32(16)).astype(np.uint16)
    nan = (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    quiet = ((b >> np.uint32(16)) | np.uint32(0x40)).astype(np.uint16)
    return np.where(nan, quiet, rounded)


def to_16bit(values, kind):
    """float64 values rounded through float32 to float16 or bfloat16, as int16 bit
    patterns (the view fastinit writes 16-bit tensors through)."""
    with np.errstate(over="ignore"):
        f = np.asarray(values, np.float32)
        if kind == FLOAT16.kind:
            return f.astype(np.float16).view(np.int16)
    return bfloat16_bits(f).view(np.int16)
