/*
 * One ISA path of the Gaussian deviates, a template: paths.h includes it once per path
 * with CDR_PATH defined. The pair loop of gauss.h's arithmetic, which gcc vectorises at
 * the path's width.
 */
/* z[j], the deviate of element first + j for j in [0, n), given words[i] = the word of
 * element (first & ~1) + i: each pair's two words give both of its deviates at once. */
static void CDR_CAT(cdr_gauss_fill_, CDR_PATH)(const uint32_t *words, uint64_t first,
                                               int64_t n, double *z)
{
    double spare;
    if (n <= 0) return;
    const int64_t skip = (int64_t)(first & 1); /* element first is a pair's second */
    if (skip) cdr_gauss_pair(words[0], words[1], &spare, &z[0]);
    /* from here on whole pairs: element first + skip + 2k and the next */
    const uint32_t *w = words + 2 * skip;
    double *out = z + skip;
    const int64_t pairs = (n - skip) / 2;
    for (int64_t k = 0; k < pairs; k++)
        cdr_gauss_pair(w[2 * k], w[2 * k + 1], &out[2 * k], &out[2 * k + 1]);
    if ((n - skip) & 1) cdr_gauss_pair(w[2 * pairs], w[2 * pairs + 1], &out[2 * pairs], &spare);
}
