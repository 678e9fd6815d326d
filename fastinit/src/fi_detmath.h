/* Deterministic exp and log (fi_detmath.c; docs/stream.md, section 6). */
#ifndef FI_DETMATH_H
#define FI_DETMATH_H

/* exp(a): exact-to-the-spec for a <= 0; 0 below -708, +inf above 709, NaN for NaN. */
double fi_exp(double a);
/* log(u) for 2^-53 <= u <= 1. */
double fi_log(double u);

#endif /* FI_DETMATH_H */
