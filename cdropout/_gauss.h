/*
 * Standard normal deviates from the stream's 32-bit words, for Gaussian dropout, with an
 * arithmetic that cdropout/reference.py repeats operation for operation in NumPy: +, -,
 * *, / and sqrt (correctly rounded everywhere), frexp (exact), and polynomials in place of
 * log, sin and cos, whose results differ between C libraries and NumPy's SIMD code. The
 * build passes -ffp-contract=off, so no multiply and add are fused here either.
 *
 * Box-Muller on the words of elements 2k and 2k+1 (a pair): u = (w[2k] + 1/2) / 2**32,
 * v = w[2k+1] / 2**32, r = sqrt(-2 ln u); element 2k gets r cos(2 pi v), element 2k+1
 * r sin(2 pi v). |z| <= r <= 6.66: the tails beyond are cut (probability 3e-11).
 */
#ifndef CDROPOUT_GAUSS_H
#define CDROPOUT_GAUSS_H

#include <math.h>
#include <stdint.h>

#define CDR_LN2 0.6931471805599453
#define CDR_HALF_PI 1.5707963267948966
#define CDR_SQRT_HALF 0.7071067811865476

/* ln(u) for u in (0, 1]: u = m 2**e with m in [sqrt(1/2), sqrt(2)), then
 * ln m = 2 atanh(s) = 2 (s + s**3/3 + ... + s**23/23), s = (m - 1) / (m + 1), |s| < 0.172. */
static inline double cdr_log_unit(double u)
{
    int e;
    double m = frexp(u, &e);
    if (m < CDR_SQRT_HALF) {
        m = m * 2.0;
        e = e - 1;
    }
    const double s = (m - 1.0) / (m + 1.0);
    const double s2 = s * s;
    double t = 1.0 / 23.0;
    for (int k = 21; k >= 1; k -= 2) t = t * s2 + 1.0 / (double)k;
    return (double)e * CDR_LN2 + 2.0 * s * t;
}

/* sin and cos of 2 pi w / 2**32: n = the nearest quarter turn, psi = the rest in
 * [-pi/4, pi/4], Taylor polynomials to psi**17 and psi**18, then n quarter turns. */
static inline void cdr_sincos_turn(uint32_t w, double *sine, double *cosine)
{
    const uint32_t n = (uint32_t)(((uint64_t)w + (1u << 29)) >> 30); /* 0 .. 4 */
    const double f = (double)((int64_t)w - (int64_t)n * (1 << 30)) / 1073741824.0;
    const double psi = f * CDR_HALF_PI;
    const double p2 = psi * psi;
    /* Horner from the highest power: sin psi / psi from psi**16/17!, cos psi from
     * -psi**18/18!; the coefficients are (-1)**k / (2k+1)! and (-1)**k / (2k)!. */
    double sn = 1.0 / 355687428096000.0, cs = -1.0 / 6402373705728000.0;
    static const double sin_coef[] = {-1.0 / 1307674368000.0, 1.0 / 6227020800.0,
                                      -1.0 / 39916800.0,      1.0 / 362880.0,
                                      -1.0 / 5040.0,          1.0 / 120.0,
                                      -1.0 / 6.0,             1.0};
    static const double cos_coef[] = {1.0 / 20922789888000.0, -1.0 / 87178291200.0,
                                      1.0 / 479001600.0,      -1.0 / 3628800.0,
                                      1.0 / 40320.0,          -1.0 / 720.0,
                                      1.0 / 24.0,             -1.0 / 2.0,
                                      1.0};
    for (int k = 0; k < 8; k++) sn = sn * p2 + sin_coef[k];
    for (int k = 0; k < 9; k++) cs = cs * p2 + cos_coef[k];
    sn = sn * psi;
    switch (n & 3) {
    case 0: *sine = sn; *cosine = cs; break;
    case 1: *sine = cs; *cosine = -sn; break;
    case 2: *sine = -sn; *cosine = -cs; break;
    default: *sine = -cs; *cosine = sn; break;
    }
}

/* z[j], the deviate of element first + j for j in [0, n), given words[i] = the word of
 * element (first & ~1) + i: each pair's two words give both of its deviates at once. */
static void cdr_gauss_fill(const uint32_t *words, uint64_t first, int64_t n, double *z)
{
    const int64_t skip = (int64_t)(first & 1); /* element first is a pair's second */
    for (int64_t k = 0; k < n + skip; k += 2) {
        const double u = ((double)words[k] + 0.5) / 4294967296.0;
        const double r = sqrt(-2.0 * cdr_log_unit(u));
        double sine, cosine;
        cdr_sincos_turn(words[k + 1], &sine, &cosine);
        if (k - skip >= 0) z[k - skip] = r * cosine;
        if (k + 1 - skip < n) z[k + 1 - skip] = r * sine;
    }
}

#endif /* CDROPOUT_GAUSS_H */
