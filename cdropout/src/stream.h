/*
 * The two random streams as docs/stream.md specifies them: the hash functions, the key
 * of a seed, the seed of a layer's call, the initial state of a block's xoshiro128++
 * lanes, and the word of an element of the counter stream. Scalar C, no ISA and no
 * Python; the vectorised loops that run the streams are the per-path templates
 * (xoshiro_loops.inc.h, counter_loops.inc.h), and cdropout/reference.py is their NumPy
 * twin.
 *
 * The xoshiro stream ("xoshiro", the NumPy API's default):
 *
 *   key        = mix64(seed + GAMMA)                 the first splitmix64 output for `seed`
 *   block      = element_index / CDR_BLOCK           element_index = offset + flat C index
 *   block_key  = mix64(key ^ fmix64(block))          keyed and non-additive: no seed can
 *                                                    replay another seed's stream shifted
 *   w[k]       = mix64(block_key + (k + 1) * GAMMA), k = 0 .. 2*CDR_LANES-1  (splitmix64)
 *   lane l     = xoshiro128++ with state (lo32 w[2l], hi32 w[2l], lo32 w[2l+1], hi32 w[2l+1])
 *   element j of the block (j = element_index % CDR_BLOCK) takes output number j / CDR_LANES
 *   of lane j % CDR_LANES: sixteen consecutive elements use one step of all sixteen lanes.
 *   drop iff that 32-bit output u < T, with T = round(p * 2**32).
 *
 * xoshiro128++ rather than a `+` variant: its scrambler leaves every output bit of full
 * quality, so the whole 32-bit word is compared with T (bench/NOTES.md, "The scrambler").
 *
 * The counter stream ("counter", cdropout.torch's default): the word of element i is a
 * pure function of (key, i), so that a compiler can generate it in place, fused into the
 * operations around it (the same bytes eager and compiled). It is java.util's
 * SplittableRandom: with start = mix64(seed + GAMMA) (the key above) and an odd increment
 * gamma = mix_gamma(seed + 2 GAMMA) (the pair that `new SplittableRandom(seed).split()`
 * holds), pair k of elements (2k, 2k + 1) takes the low and the high half of
 * mix64(start + (k + 1) gamma), its (k+1)-th nextLong().
 */
#ifndef CDROPOUT_STREAM_H
#define CDROPOUT_STREAM_H

#include <stdint.h>

/* Seeding a block costs 32 splitmix64 outputs and a start inside a block first runs its
 * lanes up to that point: 4096 keeps both small (bench/NOTES.md, "Block length"). */
#define CDR_BLOCK 4096
/* Sixteen 32-bit lanes fill one AVX-512 register, two AVX2 or four SSE2/NEON ones. */
#define CDR_LANES 16
#define CDR_GAMMA 0x9e3779b97f4a7c15ULL

/* Stafford's Mix13, the splitmix64 finaliser: a bijection on 64-bit words. */
static inline uint64_t cdr_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* MurmurHash3's fmix64, another bijection, for the block index: with mix64 there, the
 * block hash of block b would equal the key of seed b, and block s of every seed s would
 * share one stream (a test pins that this family stays apart). */
static inline uint64_t cdr_fmix64(uint64_t z)
{
    z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
    z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ULL;
    return z ^ (z >> 33);
}

static inline uint64_t cdr_key(uint64_t seed) { return cdr_mix64(seed + CDR_GAMMA); }

/* The seed of training call number `counter` of a layer seeded with `seed`: keyed and
 * non-additive like the block hash, so that the calls of one layer, and the layers of
 * nearby seeds, get unrelated streams. */
static inline uint64_t cdr_call_seed(uint64_t seed, uint64_t counter)
{
    return cdr_mix64(seed ^ cdr_fmix64(counter + CDR_GAMMA));
}

/* The two words a stream's loops take: the key, and the counter stream's increment
 * (the xoshiro stream does not read it). */
typedef struct {
    uint64_t key;
    uint64_t gamma;
} cdr_stream_key;

/* SplittableRandom's mixGamma: MurmurHash3's fmix64, odd, and with at least 24 changes
 * between neighbouring bits (a gamma with few makes mix64's outputs of consecutive
 * counters alike). */
static inline uint64_t cdr_mix_gamma(uint64_t z)
{
    z = cdr_fmix64(z) | 1;
    return __builtin_popcountll(z ^ (z >> 1)) < 24 ? z ^ 0xaaaaaaaaaaaaaaaaULL : z;
}

static inline cdr_stream_key cdr_stream_key_of(uint64_t seed)
{
    const cdr_stream_key key = {cdr_key(seed), cdr_mix_gamma(seed + 2 * CDR_GAMMA)};
    return key;
}

/* The counter stream's word of element i. */
static inline uint32_t cdr_counter_word(cdr_stream_key key, uint64_t i)
{
    const uint64_t z = cdr_mix64(key.key + ((i >> 1) + 1) * key.gamma);
    return (uint32_t)(z >> (32 * (i & 1)));
}

/* The initial state of a block's lanes, word by word: w[0][l] is lane l's first word.
 * Never all zero: mix64 is a bijection with mix64(0) == 0, so w[2l] and w[2l+1] are both
 * zero only if block_key + (2l+1)*GAMMA and block_key + (2l+2)*GAMMA both are. */
static inline __attribute__((always_inline)) void cdr_seed_words(uint32_t w[4][CDR_LANES],
                                                                 uint64_t key, uint64_t block)
{
    const uint64_t block_key = cdr_mix64(key ^ cdr_fmix64(block));
    for (int l = 0; l < CDR_LANES; l++) {
        const uint64_t a = cdr_mix64(block_key + (uint64_t)(2 * l + 1) * CDR_GAMMA);
        const uint64_t b = cdr_mix64(block_key + (uint64_t)(2 * l + 2) * CDR_GAMMA);
        w[0][l] = (uint32_t)a;
        w[1][l] = (uint32_t)(a >> 32);
        w[2][l] = (uint32_t)b;
        w[3][l] = (uint32_t)(b >> 32);
    }
}

#endif /* CDROPOUT_STREAM_H */
