/* Deterministic exp and log (fi_detmath.c; docs/stream.md, section 6). */
#ifndef FI_DETMATH_H
#define FI_DETMATH_H

#include <stdint.h>
#include <string.h>

/* exp(a): exact-to-the-spec for a <= 0; 0 below -708, +inf above 709, NaN for NaN. */
double fi_exp(double a);
/* log(u) for 2^-53 <= u <= 1. */
double fi_log(double u);

/* fi_exp's reduction, for -708 <= a <= 709: a = n ln2 + t with n = floor(a log2(e) +
 * 1/2), so |t| <= ln(2)/2 (ln 2 split so that n L_hi is exact); returns t and sets
 * *scale = 2^n. */
static inline double fi_exp_reduce(double a, double *scale)
{
    const double y = a * 0x1.71547652b82fep+0 + 0.5;
    double n = (double)(int64_t)y;                        /* floor(y), for |y| < 2^62 */
    if (n > y) n -= 1.0;
    const uint64_t scale_bits = (uint64_t)((int64_t)n + 1023) << 52;   /* n >= -1022 */
    memcpy(scale, &scale_bits, sizeof *scale);
    return (a - n * 0x1.62e42fee00000p-1) - n * 0x1.a39ef35793c76p-33;
}

/* y < fi_exp(a), mostly without fi_exp: the acceptance tests of the rejection
 * samplers. A rough exp, e = p(t) 2^n with fi_exp's reduction (|t| <= ln(2)/2) and
 * exp(t)'s Taylor polynomial p of degree 5, is within |t|^6/720 e^|t| < 3.5e-6 of
 * exp(t), i.e. within a relative 5e-6 of exp(a); fi_exp is within 1e-15 of it. So
 * y < e (1 - 2^-16) implies y < fi_exp(a), and y > e (1 + 2^-16) implies
 * y > fi_exp(a) (the two products' own roundings are 2^-53): the answer is
 * fi_exp's in every case, and fi_exp is evaluated only for y within 2^-16 of it.
 * Outside [-700, 0] (or for NaN) fi_exp decides. */
static inline int fi_less_than_exp(double y, double a)
{
    if (!(a >= -700.0 && a <= 0.0)) return y < fi_exp(a);
    double scale;
    const double t = fi_exp_reduce(a, &scale);
    const double p = 1.0 + t * (1.0 + t * (0.5 + t * (1.0 / 6 + t * (1.0 / 24 + t * (1.0 / 120)))));
    const double e = p * scale;
    if (y < e * (1.0 - 0x1p-16)) return 1;
    if (y > e * (1.0 + 0x1p-16)) return 0;
    return y < fi_exp(a);
}

#endif /* FI_DETMATH_H */
