/*
 * A fixed-size log-linear histogram of latencies in nanoseconds, for bench/loadgen.c.
 *
 * Values below 64 ns get a bucket each; above, every power of two is split into 64 buckets, so
 * a quantile is exact to within 1/64 (1.6%) of its value, whatever the number of samples. No
 * allocation, constant time per sample.
 */
#ifndef TULIP_BENCH_LATENCY_HISTOGRAM_H
#define TULIP_BENCH_LATENCY_HISTOGRAM_H

#include <stdint.h>

#define LH_SUB_BITS 6
#define LH_SUB (1u << LH_SUB_BITS)
#define LH_GROUPS 40 /* up to 2^(40 + 6) ns, about 20 hours */

struct latency_histogram {
    uint64_t count;
    uint64_t buckets[LH_GROUPS * LH_SUB];
};

static inline unsigned latency_histogram_index(uint64_t ns)
{
    if (ns < LH_SUB)
        return (unsigned)ns;
    unsigned top = 63u - (unsigned)__builtin_clzll(ns); /* position of the highest bit, >= 6 */
    unsigned group = top - LH_SUB_BITS + 1u;
    if (group >= LH_GROUPS)
        return LH_GROUPS * LH_SUB - 1u;
    unsigned sub = (unsigned)(ns >> (top - LH_SUB_BITS)) & (LH_SUB - 1u);
    return group * LH_SUB + sub;
}

/* The smallest value that falls into bucket i (what a quantile reports). */
static inline uint64_t latency_histogram_value(unsigned i)
{
    unsigned group = i / LH_SUB, sub = i % LH_SUB;
    if (group == 0)
        return sub;
    return (uint64_t)(LH_SUB + sub) << (group - 1u);
}

static inline void latency_histogram_add(struct latency_histogram *h, uint64_t ns)
{
    h->buckets[latency_histogram_index(ns)]++;
    h->count++;
}

/* The value below which a fraction q of the samples fall; 0 without samples. */
static inline uint64_t latency_histogram_quantile(const struct latency_histogram *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)(h->count - 1)) + 1u;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LH_GROUPS * LH_SUB; i++) {
        seen += h->buckets[i];
        if (seen >= rank)
            return latency_histogram_value(i);
    }
    return latency_histogram_value(LH_GROUPS * LH_SUB - 1u);
}

#endif
