/* Batches of uneven lengths: Jordan networks and truncated BPTT.
 *
 * A padded batch of lengths 2, 5 and 7 gives the sum of the gradients of its sequences run
 * alone (to 1e-5 relative) for Jordan networks (teacher forcing, free-running, fed back as
 * output or softmax; with the gradient check) and for truncated BPTT (chunks, and chunks that
 * overlap), whose chunks get each row's own length; bad lengths are errors. */
#include "lengths_common.h"

/* ---- Jordan networks ------------------------------------------------------------------------ */

enum { JOUT = 2 };

typedef struct {
    ur_params *ps;
    ur_jordan net;
    ur_tensor *y0; /* B x JOUT parameter */
    float x[T * B * IN], y[T * B * JOUT];
    ur_jordan_mode mode;
    ur_jordan_feed feed;
} jfix;

static void jfix_init(jfix *f, ur_jordan_mode mode, ur_jordan_feed feed)
{
    memset(f, 0, sizeof *f);
    ur_rng r;
    ur_rng_seed(&r, 31);
    f->ps = ur_params_new();
    ck_assert_int_eq(ur_jordan_init(&f->net, f->ps, "jordan", IN, H, JOUT, &r), 0);
    f->y0 = ur_params_add(f->ps, "y0", B, JOUT);
    ur_test_fill(f->y0, &r, -0.5f, 0.5f);
    for (int k = 0; k < T * B * IN; k++) f->x[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    for (int k = 0; k < T * B * JOUT; k++) f->y[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    f->mode = mode;
    f->feed = feed;
}

/* Summed squared error of o over the real steps, of the batch or of sequence solo alone. */
static ur_tensor *jforward(ur_tape *tp, jfix *f, int solo)
{
    int n = solo < 0 ? B : 1, Tn = solo < 0 ? T : LENS[solo];
    float xs[T * B * IN] = {0}, ys[T * B * JOUT] = {0};
    for (int t = 0; t < Tn; t++)
        for (int r = 0; r < n; r++) {
            int src = t * B + (solo < 0 ? r : solo);
            memcpy(xs + (t * n + r) * IN, f->x + src * IN, IN * sizeof(float));
            memcpy(ys + (t * n + r) * JOUT, f->y + src * JOUT, JOUT * sizeof(float));
        }
    ur_tensor *x = ur_input_from(tp, Tn * n, IN, xs), *y = ur_input_from(tp, Tn * n, JOUT, ys);
    ur_jordan_opts op = {.mode = f->mode, .feed = f->feed, .lengths = solo < 0 ? LENS : NULL};
    ur_tensor *y0 = solo < 0 ? f->y0 : ur_rows(tp, f->y0, solo, 1), *H_all;
    ur_tensor *o = ur_jordan_run(tp, &f->net, x, Tn, y, y0, &op, &H_all, NULL);
    if (solo < 0)
        for (int t = 0; t < T; t++)
            for (int b = 0; b < B; b++)
                if (t >= LENS[b] && !ur_tape_error(tp))
                    for (int j = 0; j < JOUT; j++)
                        ck_assert_float_eq(o->val[(t * B + b) * JOUT + j], 0.0f);
    ur_tensor *mask = solo < 0 ? ur_length_mask(tp, T, B, LENS) : NULL;
    return ur_mse_masked(tp, o, y, mask, UR_SUM);
}

static ur_tensor *jbatch_loss(ur_tape *tp, void *ctx) { return jforward(tp, ctx, -1); }

static void jcheck(ur_jordan_mode mode, ur_jordan_feed feed, const char *what)
{
    jfix f;
    jfix_init(&f, mode, feed);
    ur_tape *tp = ur_tape_new(0);
    ur_params_zero_grad(f.ps);
    for (int b = 0; b < B; b++) {
        ur_tape_reset(tp);
        ck_assert_msg(ur_backward(tp, jforward(tp, &f, b)) == 0, "%s", ur_tape_error(tp));
    }
    float *want = grads_copy(f.ps);
    ur_tape_reset(tp);
    ur_params_zero_grad(f.ps);
    ck_assert_msg(ur_backward(tp, jforward(tp, &f, -1)) == 0, "%s", ur_tape_error(tp));
    expect_grads(f.ps, want, what);
    ur_assert_gradcheck(f.ps, jbatch_loss, &f, EPS, ATOL, RTOL);
    /* bad lengths */
    ur_tape_reset(tp);
    ur_jordan_opts op = {.mode = mode, .feed = feed, .lengths = (const int[]){2, 0, 7}};
    ur_jordan_run(tp, &f.net, ur_input(tp, T * B, IN), T, ur_input(tp, T * B, JOUT), NULL, &op,
                  NULL, NULL);
    expect_error(tp, (const char *[]){"jordan", "sequence 1 has length 0", "[1, 7]", NULL});
    free(want);
    ur_tape_free(tp);
    ur_params_free(f.ps);
}

START_TEST(test_jordan_teacher) { jcheck(UR_JORDAN_TEACHER, UR_FEED_OUTPUT, "jordan teacher"); }
END_TEST
START_TEST(test_jordan_free) { jcheck(UR_JORDAN_FREE, UR_FEED_OUTPUT, "jordan free"); }
END_TEST
START_TEST(test_jordan_free_softmax) { jcheck(UR_JORDAN_FREE, UR_FEED_SOFTMAX, "jordan softmax"); }
END_TEST

/* ---- Truncated BPTT ------------------------------------------------------------------------
 * An LSTM and a linear head, every step's output scored by MSE (summed); the gradients of all
 * chunks are added up (no update in between), for the padded batch and for each sequence
 * alone through its own ur_tbptt of its own length. */

typedef struct {
    ur_params *ps;
    ur_cell cell;
    ur_tensor *V, *c;
    float x[T * B * IN], y[T * B * K];
} tfix;

/* Adds the gradients of every chunk of TBPTT(k1, k2) over sequence solo (or the batch). */
static void tbptt_grads(tfix *f, int k1, int k2, int solo)
{
    int n = solo < 0 ? B : 1, Tn = solo < 0 ? T : LENS[solo];
    float xs[T * B * IN], ys[T * B * K];
    for (int t = 0; t < Tn; t++)
        for (int r = 0; r < n; r++) {
            int src = t * B + (solo < 0 ? r : solo);
            memcpy(xs + (t * n + r) * IN, f->x + src * IN, IN * sizeof(float));
            memcpy(ys + (t * n + r) * K, f->y + src * K, K * sizeof(float));
        }
    ur_tbptt tb;
    ur_tbptt_chunk ch;
    ck_assert_int_eq(ur_tbptt_init(&tb, Tn, k1, k2, n, H, 1), 0);
    if (solo < 0) ck_assert_int_eq(ur_tbptt_set_lengths(&tb, LENS), 0);
    else ck_assert_ptr_null(ur_tbptt_lengths(&tb));
    ur_tape *tp = ur_tape_new(0);
    while (ur_tbptt_next(&tb, &ch)) {
        ur_tape_reset(tp);
        const int *cl = ur_tbptt_lengths(&tb);
        if (solo < 0)
            for (int b = 0; b < B; b++) {
                int want = LENS[b] - ch.start;
                want = want < 0 ? 0 : want > ch.len ? ch.len : want;
                ck_assert_int_eq(cl[b], want);
            }
        ur_tensor *x = ur_input_from(tp, ch.len * n, IN, xs + ch.start * n * IN);
        ur_seq seq;
        ur_unroll_opts opts = {.lengths = cl, .allow_empty = 1};
        ck_assert_int_eq(ur_unroll_with(tp, &f->cell, x, ch.len, ur_tbptt_state(&tb, tp), &opts,
                                        &seq), 0);
        int rows = (ch.len - ch.loss_from) * n;
        ur_tensor *y = ur_input_from(tp, rows, K, ys + (ch.start + ch.loss_from) * n * K);
        ur_tensor *o = ur_linear(tp, ur_rows(tp, seq.H, ch.loss_from * n, rows), f->V, f->c);
        ur_tensor *mask = seq.mask ? ur_rows(tp, seq.mask, ch.loss_from * n, rows) : NULL;
        ck_assert_msg(ur_backward(tp, ur_mse_masked(tp, o, y, mask, UR_SUM)) == 0, "%s",
                      ur_tape_error(tp));
        ck_assert_int_eq(ur_tbptt_carry_from(&tb, &ch, seq.states), 0);
    }
    ur_tape_free(tp);
    ur_tbptt_free(&tb);
}

static void tcheck(int k1, int k2)
{
    tfix f;
    ur_rng r;
    ur_rng_seed(&r, 50);
    f.ps = ur_params_new();
    ck_assert_int_eq(ur_lstm_cell(&f.cell, f.ps, "lstm", IN, H, &r), 0);
    f.V = ur_model_param(f.ps, "head", "V", H, K, 0.5f, &r);
    f.c = ur_model_param(f.ps, "head", "c", 1, K, 0.5f, &r);
    for (int k = 0; k < T * B * IN; k++) f.x[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    for (int k = 0; k < T * B * K; k++) f.y[k] = 2.0f * ur_rng_uniform(&r) - 1.0f;
    ur_params_zero_grad(f.ps);
    for (int b = 0; b < B; b++) tbptt_grads(&f, k1, k2, b);
    float *want = grads_copy(f.ps);
    ur_params_zero_grad(f.ps);
    tbptt_grads(&f, k1, k2, -1);
    char what[32];
    snprintf(what, sizeof what, "tbptt(%d, %d)", k1, k2);
    expect_grads(f.ps, want, what);
    free(want);
    /* bad lengths are refused and change nothing */
    ur_tbptt tb;
    ck_assert_int_eq(ur_tbptt_init(&tb, T, k1, k2, B, H, 1), 0);
    ck_assert_int_eq(ur_tbptt_set_lengths(&tb, (const int[]){2, 0, 7}), -1);
    ck_assert_msg(strstr(ur_model_error(), "sequence 1 has length 0, outside [1, 7]"), "%s",
                  ur_model_error());
    ck_assert_ptr_null(tb.lengths);
    ck_assert_int_eq(ur_tbptt_set_lengths(&tb, LENS), 0);
    ck_assert_int_eq(ur_tbptt_set_lengths(&tb, NULL), 0);
    ck_assert_ptr_null(tb.lengths);
    ur_tbptt_free(&tb);
    ur_params_free(f.ps);
}

START_TEST(test_tbptt_chunks) { tcheck(3, 0); }
END_TEST
START_TEST(test_tbptt_overlap) { tcheck(2, 4); }
END_TEST

int main(void)
{
    Suite *s = suite_create("lengths: jordan and tbptt");
    TCase *seq = tcase_create("jordan and tbptt");
    tcase_set_timeout(seq, 60);
    tcase_add_test(seq, test_jordan_teacher);
    tcase_add_test(seq, test_jordan_free);
    tcase_add_test(seq, test_jordan_free_softmax);
    tcase_add_test(seq, test_tbptt_chunks);
    tcase_add_test(seq, test_tbptt_overlap);
    suite_add_tcase(s, seq);
    return ur_test_run(s);
}
