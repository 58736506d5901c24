/* Truncated BPTT: chunk planning and the state carried, detached, from chunk to chunk.
 * See the TBPTT section of ur_models.h for the chunk arithmetic, worked out in full. */
#include "models/ur_models.h"

#include <stdlib.h>
#include <string.h>

/* start of chunk j: up to k2 - k1 steps of history before its loss window [j k1, ...). */
static int chunk_start(int j, int k1, int k2)
{
    int s = j * k1 - (k2 - k1);
    return s > 0 ? s : 0;
}

int ur_tbptt_plan(int T, int k1, int k2, int j, ur_tbptt_chunk *ch)
{
    if (k2 == 0) k2 = k1;
    if (!ch || T < 1 || k1 < 1 || k2 < k1 || j < 0) return -1;
    if (j > (T - 1) / k1) return 0;
    int start = chunk_start(j, k1, k2);
    int end = (j + 1) * k1 < T ? (j + 1) * k1 : T;
    ch->index = j;
    ch->start = start;
    ch->len = end - start;
    ch->loss_from = j * k1 - start;
    ch->carry = end < T ? chunk_start(j + 1, k1, k2) - start - 1 : -1;
    return 1;
}

int ur_tbptt_init(ur_tbptt *tb, int T, int k1, int k2, int B, int width, int has_c)
{
    ur_model_clear_error();
    if (!tb) return ur_model_fail("tbptt_init: tb must not be NULL");
    memset(tb, 0, sizeof *tb);
    ur_tbptt_chunk probe;
    if (ur_tbptt_plan(T, k1, k2, 0, &probe) != 1)
        return ur_model_fail("tbptt_init: needs T >= 1, k1 >= 1 and k2 = 0 or k2 >= k1; got T %d, "
                             "k1 %d, k2 %d", T, k1, k2);
    if (B < 1 || width < 1)
        return ur_model_fail("tbptt_init: needs B >= 1 and width >= 1, got %d and %d", B, width);
    *tb = (ur_tbptt){.T = T, .k1 = k1, .k2 = k2 ? k2 : k1, .B = B, .width = width,
                     .has_c = has_c != 0};
    size_t n = (size_t)B * (size_t)width;
    tb->h = calloc(n, sizeof *tb->h);
    if (tb->has_c) tb->c = calloc(n, sizeof *tb->c);
    if (!tb->h || (tb->has_c && !tb->c)) {
        ur_tbptt_free(tb);
        return ur_model_fail("tbptt_init: out of memory for a carried %dx%d state", B, width);
    }
    return 0;
}

int ur_tbptt_next(ur_tbptt *tb, ur_tbptt_chunk *ch)
{
    if (!tb || !tb->h || ur_tbptt_plan(tb->T, tb->k1, tb->k2, tb->next, ch) != 1) return 0;
    tb->next++;
    if (tb->lengths) { /* real steps of each row among [start, start + len) */
        for (int b = 0; b < tb->B; b++) {
            int n = tb->lengths[b] - ch->start;
            tb->chunk_lengths[b] = n < 0 ? 0 : n > ch->len ? ch->len : n;
        }
    }
    return 1;
}

const int *ur_tbptt_lengths(const ur_tbptt *tb) { return tb ? tb->chunk_lengths : NULL; }

int ur_tbptt_set_lengths(ur_tbptt *tb, const int *lengths)
{
    ur_model_clear_error();
    if (!tb || !tb->h)
        return ur_model_fail("tbptt_set_lengths: the tbptt is NULL or not initialised");
    if (!lengths) {
        free(tb->lengths);
        free(tb->chunk_lengths);
        tb->lengths = tb->chunk_lengths = NULL;
        return 0;
    }
    for (int b = 0; b < tb->B; b++)
        if (lengths[b] < 1 || lengths[b] > tb->T)
            return ur_model_fail("tbptt_set_lengths: sequence %d has length %d, outside [1, %d]",
                                 b, lengths[b], tb->T);
    if (!tb->lengths) {
        int *l = malloc((size_t)tb->B * sizeof *l), *cl = malloc((size_t)tb->B * sizeof *cl);
        if (!l || !cl) {
            free(l);
            free(cl);
            return ur_model_fail("tbptt_set_lengths: out of memory for %d lengths", tb->B);
        }
        tb->lengths = l;
        tb->chunk_lengths = cl;
    }
    memcpy(tb->lengths, lengths, (size_t)tb->B * sizeof *lengths);
    return 0;
}

ur_state ur_tbptt_state(const ur_tbptt *tb, ur_tape *tp)
{
    ur_state s = {NULL, NULL};
    if (!tb || !tb->h) {
        s.h = ur_tape_fail(tp, "tbptt_state: the tbptt is NULL or not initialised");
        return s;
    }
    s.h = ur_input_from(tp, tb->B, tb->width, tb->h);
    if (tb->has_c) s.c = ur_input_from(tp, tb->B, tb->width, tb->c);
    return s;
}

static int fits(const ur_tbptt *tb, const ur_tensor *t)
{
    return t && t->val && t->rows == tb->B && t->cols == tb->width;
}

int ur_tbptt_carry(ur_tbptt *tb, ur_state s)
{
    if (!tb || !tb->h || !fits(tb, s.h) || (tb->has_c && !fits(tb, s.c))) return -1;
    size_t n = (size_t)tb->B * (size_t)tb->width;
    memcpy(tb->h, s.h->val, n * sizeof *tb->h);
    if (tb->has_c) memcpy(tb->c, s.c->val, n * sizeof *tb->c);
    return 0;
}

int ur_tbptt_carry_from(ur_tbptt *tb, const ur_tbptt_chunk *ch, const ur_state *states)
{
    if (!tb || !ch || ch->carry >= ch->len) return -1;
    if (ch->carry < 0) return 0;
    if (!states) return -1;
    return ur_tbptt_carry(tb, states[ch->carry]);
}

void ur_tbptt_rewind(ur_tbptt *tb, int keep_state)
{
    if (!tb || !tb->h) return;
    tb->next = 0;
    if (keep_state) return;
    size_t n = (size_t)tb->B * (size_t)tb->width;
    memset(tb->h, 0, n * sizeof *tb->h);
    if (tb->c) memset(tb->c, 0, n * sizeof *tb->c);
}

void ur_tbptt_free(ur_tbptt *tb)
{
    if (!tb) return;
    free(tb->h);
    free(tb->c);
    free(tb->lengths);
    free(tb->chunk_lengths);
    tb->h = tb->c = NULL;
    tb->lengths = tb->chunk_lengths = NULL;
}
