/* ur_tape_write_dot: node, parameter, leaf, edge and cluster counts of the drawings of known
 * graphs (a hand-made one, a 3-step Elman network with a loss at every step, a 3-step Jordan
 * network under teacher forcing and free-running, a checkpointed unroll), escaping, and write
 * failures reported as errors. */
#define _POSIX_C_SOURCE 200809L
#include "ur_test.h"

#include <errno.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

typedef struct counts {
    int ops, params, leaves, edges, dashed, across, clusters;
} counts;

/* Writes tp as DOT into memory and counts its elements line by line. */
static counts draw(const ur_tape *tp, int clusters, char **text)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    ur_dot_opts o = {clusters, 1, "a \"quoted\" title"};
    ck_assert_int_eq(ur_tape_write_dot(tp, f, &o), 0);
    long n = ftell(f);
    ck_assert_int_gt(n, 0);
    char *buf = malloc((size_t)n + 1);
    rewind(f);
    ck_assert_int_eq((long)fread(buf, 1, (size_t)n, f), n);
    buf[n] = '\0';
    fclose(f);
    counts c = {0};
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        while (*line == ' ') line++;
        int id;
        char kind;
        if (strstr(line, " -> ")) {
            c.edges++;
            c.dashed += strstr(line, "style=dashed") != NULL;
            c.across += strstr(line, "constraint=false") != NULL;
        } else if (strncmp(line, "subgraph cluster_", 17) == 0) {
            c.clusters++;
        } else if (sscanf(line, "%c%d [label=", &kind, &id) == 2) {
            c.ops += kind == 'n';
            c.params += kind == 'p';
            c.leaves += kind == 'l';
        }
    }
    if (text) {
        /* strtok cut the buffer; write it again for the caller. */
        free(buf);
        f = tmpfile();
        ck_assert_int_eq(ur_tape_write_dot(tp, f, &o), 0);
        n = ftell(f);
        buf = malloc((size_t)n + 1);
        rewind(f);
        ck_assert_int_eq((long)fread(buf, 1, (size_t)n, f), n);
        buf[n] = '\0';
        fclose(f);
        *text = buf;
    } else {
        free(buf);
    }
    return c;
}

static void expect(counts c, int ops, int params, int leaves, int edges, int dashed, int across,
                   int clusters)
{
    ck_assert_msg(c.ops == ops && c.params == params && c.leaves == leaves && c.edges == edges &&
                  c.dashed == dashed && c.across == across && c.clusters == clusters,
                  "got %d ops, %d params, %d leaves, %d edges (%d dashed, %d across steps), %d "
                  "clusters; expected %d, %d, %d, %d (%d, %d), %d", c.ops, c.params, c.leaves,
                  c.edges, c.dashed, c.across, c.clusters, ops, params, leaves, edges, dashed,
                  across, clusters);
}

/* sum(tanh(x W + b)^2): 4 ops, 2 parameters, 1 leaf, 3 + 1 + 2 + 1 edges. */
START_TEST(test_small_graph)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "layer.W", 3, 4), *b = ur_params_add(ps, "layer.\"b\"", 1, 4);
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *z = ur_tanh(tp, ur_linear(tp, ur_input(tp, 2, 3), w, b));
    ur_sum(tp, ur_mul(tp, z, z));
    char *text;
    expect(draw(tp, 0, &text), 4, 2, 1, 7, 0, 0, 0);
    ck_assert_ptr_nonnull(strstr(text, "label=\"layer.W\\n3x4\""));
    ck_assert_ptr_nonnull(strstr(text, "label=\"layer.\\\"b\\\"\\n1x4\""));
    ck_assert_ptr_nonnull(strstr(text, "label=\"a \\\"quoted\\\" title\""));
    ck_assert_ptr_nonnull(strstr(text, "n1 [label=\"tanh\\n2x4\""));
    ck_assert_ptr_nonnull(strstr(text, "n1 -> n2;"));
    free(text);
    ur_tape_reset(tp);
    expect(draw(tp, 1, NULL), 0, 0, 0, 0, 0, 0, 0); /* an empty tape is an empty graph */
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

enum { B = 2, IN = 3, HID = 4, OUT = 3, T = 3 };

/* The 3-step Elman network of examples/unfold: x U + b for all steps (3 edges), W's batched
 * gradient, which does the projection's backward too (W, U, x, b: 4), per step the recurrent
 * product (P's rows, h_{t-1}, W dashed: 3) and tanh (1), the stacked H (3), per step the head
 * (h_t, V, c: 3) and the loss (1), two adds (4): 17 ops, 5 parameters, 2 leaves (x, the zero
 * h_{-1}), 38 edges; 3 steps of 4 ops. */
START_TEST(test_elman_unfolded)
{
    ur_rng rng;
    ur_rng_seed(&rng, 1);
    ur_params *ps = ur_params_new();
    ur_cell cell;
    ck_assert_int_eq(ur_elman_cell(&cell, ps, "elman", IN, HID, &rng), 0);
    ur_tensor *V = ur_model_param(ps, "out", "V", HID, OUT, 0.5f, &rng);
    ur_tensor *c = ur_model_param(ps, "out", "c", 1, OUT, 0.5f, &rng);
    int labels[T * B] = {0, 1, 2, 0, 1, 2};
    ur_tape *tp = ur_tape_new(0);
    ur_seq seq;
    ck_assert_int_eq(ur_unroll(tp, &cell, ur_input(tp, T * B, IN), T, (ur_state){0}, 0, &seq), 0);
    ur_tensor *loss = NULL;
    for (int t = 0; t < T; t++) {
        ur_tape_set_context(tp, "head", t);
        ur_tensor *l = ur_softmax_nll(tp, ur_linear(tp, seq.states[t].h, V, c), labels + t * B,
                                      UR_SUM);
        ur_tape_set_context(tp, NULL, -1);
        loss = loss ? ur_add(tp, loss, l) : l;
    }
    ck_assert_int_eq(ur_backward(tp, loss), 0);
    char *text;
    counts k = draw(tp, 1, &text);
    /* h_{t-1} -> step t crosses from one box to the next: left out of the ranking. */
    expect(k, 17, 5, 2, 38, 3, 2, 3);
    for (int t = 0; t < T; t++) {
        char name[32];
        snprintf(name, sizeof name, "subgraph cluster_t%d", t);
        ck_assert_ptr_nonnull(strstr(text, name));
    }
    ck_assert_ptr_nonnull(strstr(text, "rankdir=BT"));
    free(text);
    expect(draw(tp, 0, NULL), 17, 5, 2, 38, 3, 0, 0);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* Jordan, teacher forcing: the fed-back targets are data, so nothing is recurrent: x U + b (3
 * edges), + Y W (3), tanh (1), o = H V + c (3), mse against the targets (2): 5 ops and not one
 * of them belongs to a step. Free-running: per step the product (x U + b's rows, the fed-back
 * o_{t-1} or y0, W: 3), tanh (1) and the head (3), plus the stacked H and o (3 + 3), mse (2):
 * 13 ops, 32 edges; o_{t-1} -> step t crosses steps twice. */
START_TEST(test_jordan_unfolded)
{
    ur_rng rng;
    ur_rng_seed(&rng, 2);
    ur_params *ps = ur_params_new();
    ur_jordan m;
    ck_assert_int_eq(ur_jordan_init(&m, ps, "jordan", IN, HID, OUT, &rng), 0);
    ur_tape *tp = ur_tape_new(0);
    for (int mode = 0; mode < 2; mode++) {
        ur_tape_reset(tp);
        ur_jordan_opts op = {.mode = mode ? UR_JORDAN_FREE : UR_JORDAN_TEACHER,
                              .feed = UR_FEED_OUTPUT, .p_teacher = 1.0f};
        ur_tensor *y = ur_input(tp, T * B, OUT);
        ur_tensor *o = ur_jordan_run(tp, &m, ur_input(tp, T * B, IN), T, y, NULL, &op, NULL, NULL);
        ck_assert_int_eq(ur_backward(tp, ur_mse(tp, o, y, UR_SUM)), 0);
        if (mode == 0) expect(draw(tp, 1, NULL), 5, 5, 3, 12, 0, 0, 0);
        else expect(draw(tp, 1, NULL), 13, 5, 3, 32, 0, 2, 3);
    }
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* A checkpointed unroll is one node per segment: each reads the state before it, its rows of
 * x and the three Elman parameters (5 edges); the join reads both (2); the head (3) and the
 * loss (1): 5 ops, 16 edges. */
START_TEST(test_checkpointed)
{
    ur_rng rng;
    ur_rng_seed(&rng, 3);
    ur_params *ps = ur_params_new();
    ur_cell cell;
    ck_assert_int_eq(ur_elman_cell(&cell, ps, "elman", IN, HID, &rng), 0);
    ur_tensor *V = ur_model_param(ps, "out", "V", HID, OUT, 0.5f, &rng);
    ur_tensor *c = ur_model_param(ps, "out", "c", 1, OUT, 0.5f, &rng);
    int labels[6 * B] = {0};
    ur_tape *tp = ur_tape_new(0);
    ur_seq seq;
    ur_checkpoint ck = {3, 0};
    ck_assert_int_eq(ur_unroll_checkpointed(tp, &cell, ur_input(tp, 6 * B, IN), 6, (ur_state){0},
                                            0, &ck, &seq), 0);
    ur_softmax_nll(tp, ur_linear(tp, seq.H, V, c), labels, UR_SUM);
    char *text;
    expect(draw(tp, 1, &text), 5, 5, 2, 16, 0, 0, 0);
    ck_assert_ptr_nonnull(strstr(text, "n1 [label=\"checkpoint_segment\\n6x4\""));
    ck_assert_ptr_nonnull(strstr(text, "n0 -> n1;")); /* the first segment's last h */
    free(text);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

/* Every write is checked: a full disk and an unwritable path are errors with errno set. */
START_TEST(test_write_errors)
{
    ur_params *ps = ur_params_new();
    ur_tensor *w = ur_params_add(ps, "w", 4, 4);
    ur_tape *tp = ur_tape_new(0);
    ur_tensor *h = ur_input(tp, 2, 4);
    for (int k = 0; k < 50; k++) h = ur_tanh(tp, ur_matmul(tp, h, w, 0, 0));
    FILE *full = fopen("/dev/full", "w");
    if (full) {
        errno = 0;
        ck_assert_int_eq(ur_tape_write_dot(tp, full, NULL), -1);
        ck_assert_int_eq(errno, ENOSPC);
        fclose(full);
    }
    ck_assert_int_eq(ur_tape_write_dot_file(tp, "/nonexistent-dir/x.dot", NULL), -1);
    ck_assert_int_eq(errno, ENOENT);
    if (access("/dev/full", W_OK) == 0) {
        ck_assert_int_eq(ur_tape_write_dot_file(tp, "/dev/full", NULL), -1);
        ck_assert_int_eq(errno, ENOSPC);
    }
    ck_assert_int_eq(ur_tape_write_dot(NULL, stdout, NULL), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(ur_tape_write_dot(tp, NULL, NULL), -1);
    ur_tape_free(tp);
    ur_params_free(ps);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dot");
    TCase *tc = tcase_create("drawings");
    tcase_add_test(tc, test_small_graph);
    tcase_add_test(tc, test_elman_unfolded);
    tcase_add_test(tc, test_jordan_unfolded);
    tcase_add_test(tc, test_checkpointed);
    tcase_add_test(tc, test_write_errors);
    suite_add_tcase(s, tc);
    return ur_test_run(s);
}
