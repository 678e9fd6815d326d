/*
 * exp and log from IEEE additions, multiplications, divisions and exact scalings
 * only, so that they round the same way on every machine (a platform's libm need
 * not): the rejection samplers' acceptance tests (docs/stream.md, section 6).
 */
#include "fi_detmath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(a) for a <= 0 from IEEE additions, multiplications and exact scalings only,
 * so that it rounds the same way on every machine (libm's exp need not):
 * a = n ln2 + r with |r| <= ln(2)/2, exp(r) by its Taylor polynomial of degree 13
 * in Horner form (coefficients 1/k! rounded to double), times 2^n. */
static const double FI_EXP_COEF[14] = {
    1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
    1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};

double fi_exp(double a)
{
    if (a < -708.0) return 0.0;                           /* below the normal range */
    if (a > 709.0) return (double)INFINITY;               /* above the double range */
    if (a != a) return a;                                 /* NaN: no integer conversion */
    double scale;
    const double r = fi_exp_reduce(a, &scale);
    double p = FI_EXP_COEF[13];
    for (int k = 12; k >= 0; k--) p = p * r + FI_EXP_COEF[k];
    return p * scale;
}

/* log(u) for 0 < u <= 1, likewise: u = m 2^e with m in [sqrt(1/2), sqrt(2)),
 * log(m) = 2 atanh(s) = s (2 + z (2/3 + z (2/5 + ... + z 2/23))), s = (m-1)/(m+1), z = s^2. */
static const double FI_LOG_COEF[12] = {
    2.0, 2.0 / 3, 2.0 / 5, 2.0 / 7, 2.0 / 9, 2.0 / 11, 2.0 / 13, 2.0 / 15, 2.0 / 17, 2.0 / 19,
    2.0 / 21, 2.0 / 23};

double fi_log(double u)
{
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33;
    uint64_t bits;                                        /* u is normal: u >= 2^-53 */
    memcpy(&bits, &u, sizeof bits);
    int e = (int)(bits >> 52) - 1023;
    bits = (bits & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL;
    double m;                                             /* u = m 2^e, m in [1, 2) */
    memcpy(&m, &bits, sizeof m);
    if (m > 0x1.6a09e667f3bcdp+0) { m *= 0.5; e += 1; }
    const double s = (m - 1.0) / (m + 1.0), z = s * s;
    double p = FI_LOG_COEF[11];
    for (int k = 10; k >= 0; k--) p = p * z + FI_LOG_COEF[k];
    return e * ln2_hi + (e * ln2_lo + s * p);
}
