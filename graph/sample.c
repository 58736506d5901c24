/* Sampling an index from a row of logits: softmax with temperature, optional top-k.
 *
 * p_i = exp((x_i - m) / T) / sum_j exp((x_j - m) / T) over the kept logits, m their maximum,
 * so every exponent is <= 0 and nothing overflows. Passes over the logits, no scratch:
 *   1. top-k cut-off (only when 0 < top_k < k): the top_k-th largest value, from a min-heap
 *      of the top_k largest keys on the stack when top_k <= TOPK_STACK (one pass,
 *      O(k log top_k)); for larger top_k by bisecting on the float's ordered bit pattern
 *      (32 counting passes, no memory at all);
 *   2. the maximum m of the kept logits;
 *   3. the normaliser Z = sum exp(...) in double;
 *   4. draw u Z with u uniform in [0, 1) and walk the cumulative sum until it passes u Z.
 * "Drawable" logits are those that are neither NaN nor -inf.
 */
#include "graph/ur_train.h"

#include <math.h>

static int drawable(float x) { return !isnan(x) && x != -INFINITY; }

/* A key whose unsigned order is the float order (for non-NaN values). */
static uint32_t order_key(float x)
{
    union { float f; uint32_t u; } v = {x};
    return (v.u & 0x80000000u) ? ~v.u : v.u | 0x80000000u;
}

int ur_argmax(const float *logits, int k)
{
    int best = -1;
    for (int i = 0; logits && i < k; i++)
        if (drawable(logits[i]) && (best < 0 || logits[i] > logits[best])) best = i;
    return best;
}

/* Number of drawable logits whose key is >= key. */
static long count_at_least(const float *x, int k, uint32_t key)
{
    long n = 0;
    for (int i = 0; i < k; i++) n += drawable(x[i]) && order_key(x[i]) >= key;
    return n;
}

/* The largest key c with count_at_least(c) >= top_k: the key of the top_k-th largest
 * drawable logit. Assumes at least top_k drawable logits. */
static uint32_t top_k_bisect(const float *x, int k, int top_k)
{
    uint64_t lo = 0, hi = UINT32_MAX;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2;
        if (count_at_least(x, k, (uint32_t)mid) >= top_k) lo = mid;
        else hi = mid - 1;
    }
    return (uint32_t)lo;
}

#define TOPK_STACK 256

static void sift_down(uint32_t *h, int n, int i)
{
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && h[c + 1] < h[c]) c++;
        if (h[i] <= h[c]) return;
        uint32_t tmp = h[i];
        h[i] = h[c];
        h[c] = tmp;
        i = c;
    }
}

/* Same result as top_k_bisect: the root of a min-heap holding the top_k largest keys. */
static uint32_t top_k_cutoff(const float *x, int k, int top_k)
{
    if (top_k > TOPK_STACK) return top_k_bisect(x, k, top_k);
    uint32_t heap[TOPK_STACK];
    int n = 0;
    for (int i = 0; i < k; i++) {
        if (!drawable(x[i])) continue;
        uint32_t key = order_key(x[i]);
        if (n < top_k) {
            heap[n++] = key;
            if (n == top_k)
                for (int j = n / 2 - 1; j >= 0; j--) sift_down(heap, n, j);
        } else if (key > heap[0]) {
            heap[0] = key;
            sift_down(heap, n, 0);
        }
    }
    return heap[0];
}

int ur_sample_logits(const float *logits, int k, float temperature, int top_k, ur_rng *rng)
{
    if (!logits || k <= 0 || !(temperature >= 0.0f)) return -1;
    if (temperature == 0.0f || top_k == 1) return ur_argmax(logits, k);
    if (!rng) return -1;

    uint32_t cut = 0;  /* keys below cut are dropped; 0 keeps everything */
    if (top_k > 1 && top_k < k && count_at_least(logits, k, 0) > top_k)
        cut = top_k_cutoff(logits, k, top_k);

    int best = -1;
    long n_inf = 0;
    for (int i = 0; i < k; i++) {
        if (!drawable(logits[i]) || order_key(logits[i]) < cut) continue;
        if (best < 0 || logits[i] > logits[best]) best = i;
        n_inf += logits[i] == INFINITY;
    }
    if (best < 0) return -1;
    if (n_inf > 0) {  /* the limit of the softmax: uniform over the +inf logits */
        uint32_t pick = ur_rng_below(rng, (uint32_t)n_inf);
        for (int i = 0; i < k; i++)
            if (logits[i] == INFINITY && pick-- == 0) return i;
    }

    const double m = logits[best], inv_t = 1.0 / (double)temperature;
    double z = 0.0;
    for (int i = 0; i < k; i++)
        if (drawable(logits[i]) && order_key(logits[i]) >= cut)
            z += exp(((double)logits[i] - m) * inv_t);

    double u = (double)(ur_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0); /* [0, 1) */
    double target = u * z, cum = 0.0;
    int last = best;
    for (int i = 0; i < k; i++) {
        if (!drawable(logits[i]) || order_key(logits[i]) < cut) continue;
        double w = exp(((double)logits[i] - m) * inv_t);
        if (w > 0.0) last = i;
        cum += w;
        if (cum > target) return i;
    }
    return last; /* rounding left target just above the total */
}
