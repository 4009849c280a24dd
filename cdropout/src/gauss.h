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
 *
 * No branch and no library call (frexp and the integer-to-double conversions by bit
 * operations, the quadrant by selects), so that gcc vectorises the pair loop of
 * gauss.inc.h; every path gives the same bytes: the same correctly rounded operations,
 * in the same order, lane by lane.
 */
#ifndef CDROPOUT_GAUSS_H
#define CDROPOUT_GAUSS_H

#include <stdint.h>
#include <string.h>

#define CDR_LN2 0.6931471805599453
#define CDR_HALF_PI 1.5707963267948966
#define CDR_SQRT_HALF 0.7071067811865476
#define CDR_TWO_52 4503599627370496.0 /* a double whose ulp is 1 */

static inline __attribute__((always_inline)) double cdr_from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static inline __attribute__((always_inline)) uint64_t cdr_to_bits(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return bits;
}

/* mask (all ones or all zeros) ? a : b, by bits: gcc if-converts a ternary of doubles
 * only with AVX-512's masks, and a branch keeps the loop scalar. The masks are 64-bit
 * integers throughout, as the doubles' lanes are: an int in between stops vectorisation. */
static inline __attribute__((always_inline)) double cdr_pick(uint64_t mask, double a, double b)
{
    return cdr_from_bits((cdr_to_bits(a) & mask) | (cdr_to_bits(b) & ~mask));
}

/* (double)k for 0 <= k < 2**52, exactly: k in the mantissa of 2**52, minus 2**52
 * (vectorises where the ISA has no 64-bit integer to double conversion) */
static inline __attribute__((always_inline)) double cdr_u52_to_double(uint64_t k)
{
    return cdr_from_bits(cdr_to_bits(CDR_TWO_52) | k) - CDR_TWO_52;
}

/* ln(u) for u in [2**-33, 1]: u = m 2**e with m in [sqrt(1/2), sqrt(2)), then
 * ln m = 2 atanh(s) = 2 (s + s**3/3 + ... + s**23/23), s = (m - 1) / (m + 1), |s| < 0.172.
 * frexp by bits: u is normal, so m in [1/2, 1) is u with the exponent field of 1/2, and
 * e is the biased exponent less 1022. */
static inline __attribute__((always_inline)) double cdr_log_unit(double u)
{
    const uint64_t bits = cdr_to_bits(u);
    double m = cdr_from_bits((bits & 0x800FFFFFFFFFFFFFull) | 0x3FE0000000000000ull);
    double e = cdr_u52_to_double(bits >> 52) - 1022.0;
    /* m < sqrt(1/2) as a 64-bit mask from the bits: positive doubles order as their bit
     * patterns, so the difference's sign bit says it (a double compare into a 64-bit
     * integer mask does not vectorise on SSE2 with gcc 12) */
    const uint64_t below =
        (uint64_t)0 - ((cdr_to_bits(m) - cdr_to_bits(CDR_SQRT_HALF)) >> 63);
    m = cdr_pick(below, m * 2.0, m);
    e = cdr_pick(below, e - 1.0, e);
    const double s = (m - 1.0) / (m + 1.0);
    const double s2 = s * s;
    double t = 1.0 / 23.0;
    for (int k = 21; k >= 1; k -= 2) t = t * s2 + 1.0 / (double)k;
    return e * CDR_LN2 + 2.0 * s * t;
}

/* sin and cos of 2 pi w / 2**32: n = the nearest quarter turn, psi = the rest in
 * [-pi/4, pi/4], Taylor polynomials to psi**17 and psi**18, then n quarter turns. */
static inline __attribute__((always_inline)) void cdr_sincos_turn(uint32_t w, double *sine,
                                                                  double *cosine)
{
    const uint64_t n = ((uint64_t)w + (1u << 29)) >> 30; /* 0 .. 4 */
    /* w - n 2**30, in [-2**29, 2**29), shifted by 2**29 to convert it as above */
    const double rest = cdr_u52_to_double((uint64_t)w + (1u << 29) - (n << 30)) - 536870912.0;
    const double f = rest / 1073741824.0;
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
    /* n quarter turns: (sin, cos) becomes (cos, -sin) per turn */
    const uint64_t odd = (uint64_t)0 - (n & 1), sine_negated = (uint64_t)0 - ((n >> 1) & 1),
                   cosine_negated = (uint64_t)0 - (((n + 1) >> 1) & 1);
    const double turned_sine = cdr_pick(odd, cs, sn), turned_cosine = cdr_pick(odd, sn, cs);
    *sine = cdr_pick(sine_negated, -turned_sine, turned_sine);
    *cosine = cdr_pick(cosine_negated, -turned_cosine, turned_cosine);
}

/* The two deviates of a pair from its two words. */
static inline __attribute__((always_inline)) void cdr_gauss_pair(uint32_t w0, uint32_t w1,
                                                                 double *z0, double *z1)
{
    const double u = (cdr_u52_to_double(w0) + 0.5) / 4294967296.0;
    const double r = __builtin_sqrt(-2.0 * cdr_log_unit(u));
    double sine, cosine;
    cdr_sincos_turn(w1, &sine, &cosine);
    *z0 = r * cosine;
    *z1 = r * sine;
}

#endif /* CDROPOUT_GAUSS_H */
