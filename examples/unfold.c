/* unfold: the unfolded computational graph of small recurrent networks, drawn from the tape
 * that recorded them (ur_tape_write_dot), with the nodes of each time step in a box:
 *
 *   elman3           a 3-step Elman network, a = b + W h + U x, h = tanh a, o = c + V h, and
 *                    a softmax loss at every step: W is drawn once, with an edge into every
 *                    step; h_{t-1} feeds step t. (x U + b is computed for all steps by one
 *                    GEMM, so U and b have one edge, into that product.)
 *   jordan3-teacher  a 3-step Jordan network under teacher forcing: step t is fed the previous
 *                    TARGET, known in advance, so the steps are independent and the library
 *                    runs all three as three batched GEMMs: no edge from one step to another.
 *   jordan3-free     the same network free-running: its own output o_{t-1} feeds step t.
 *   elman6-checkpointed  a 6-step Elman network checkpointed every 3 steps: the tape holds
 *                    one node per segment (recorded again in backward), not one per op.
 *
 * Writes DIR/NAME.dot and, where Graphviz is installed, DIR/NAME.png (dot -Tpng). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/common.h"
#include "unroll.h"

enum { B = 2, IN = 3, HID = 4, OUT = 3 };

typedef struct drawing {
    const char *name, *title;
    int clusters;
} drawing;

/* Records drawing d on tp with new parameters in ps (which the drawing then names). */
static int record(ur_tape *tp, ur_params *ps, int d, ur_rng *rng)
{
    static float x[6 * B * IN], y[6 * B * OUT];
    static int labels[6 * B];
    for (int k = 0; k < 6 * B * IN; k++) x[k] = 2.0f * ur_rng_uniform(rng) - 1.0f;
    for (int k = 0; k < 6 * B * OUT; k++) y[k] = 2.0f * ur_rng_uniform(rng) - 1.0f;
    for (int k = 0; k < 6 * B; k++) labels[k] = (int)ur_rng_below(rng, OUT);
    int rc = -1;
    ur_tensor *loss = NULL;
    if (d == 0 || d == 3) {
        int T = d == 0 ? 3 : 6;
        ur_cell cell;
        if (ur_elman_cell(&cell, ps, "elman", IN, HID, rng) != 0) goto done;
        ur_tensor *V = ur_model_param(ps, "out", "V", HID, OUT, 0.5f, rng);
        ur_tensor *c = ur_model_param(ps, "out", "c", 1, OUT, 0.5f, rng);
        if (!V || !c) goto done;
        ur_tensor *xs = ur_input_from(tp, T * B, IN, x);
        ur_seq seq;
        ur_checkpoint ck = {d == 3 ? 3 : 0, 0};
        if (ur_unroll_checkpointed(tp, &cell, xs, T, (ur_state){0}, 0, &ck, &seq) != 0) goto done;
        if (d == 0) { /* o_t and L_t at each step, in step t's box */
            for (int t = 0; t < T; t++) {
                ur_tape_set_context(tp, "head", t);
                ur_tensor *o = ur_linear(tp, seq.states[t].h, V, c);
                ur_tensor *l = ur_softmax_nll(tp, o, labels + t * B, UR_SUM);
                ur_tape_set_context(tp, NULL, -1);
                loss = loss ? ur_add(tp, loss, l) : l;
            }
        } else {
            loss = ur_softmax_nll(tp, ur_linear(tp, seq.H, V, c), labels, UR_SUM);
        }
    } else {
        ur_jordan m;
        if (ur_jordan_init(&m, ps, "jordan", IN, HID, OUT, rng) != 0) goto done;
        ur_jordan_opts op = {.mode = d == 1 ? UR_JORDAN_TEACHER : UR_JORDAN_FREE,
                             .feed = UR_FEED_OUTPUT, .p_teacher = 1.0f};
        ur_tensor *xs = ur_input_from(tp, 3 * B, IN, x);
        ur_tensor *ys = ur_input_from(tp, 3 * B, OUT, y);
        ur_tensor *o = ur_jordan_run(tp, &m, xs, 3, ys, NULL, &op, NULL, NULL);
        loss = ur_mse(tp, o, ys, UR_SUM);
    }
    /* A backward proves the drawing is of a whole training step's graph. */
    ur_params_zero_grad(ps);
    rc = ur_backward(tp, loss);
done:
    if (rc != 0)
        fprintf(stderr, "unfold: %s\n", ur_tape_error(tp) ? ur_tape_error(tp) : ur_model_error());
    return rc;
}

int main(int argc, char **argv)
{
    const char *dir = ".";
    int no_png = 0, seed = 1;
    const ex_opt spec[] = {
        {"out-dir", EX_STRING, &dir, 0, 0, "folder for the .dot (and .png) files"},
        {"no-png", EX_FLAG, &no_png, 0, 0, "write only the DOT files"},
        {"seed", EX_INT, &seed, 0, 2147483647, "random seed (weights and data)"},
    };
    int pc = ex_parse(argc, argv, 1, "unfold",
                      "Draws the unfolded computational graphs of a 3-step Elman network, of a "
                      "3-step Jordan network\nunder teacher forcing and free-running, and of a "
                      "checkpointed 6-step Elman network, from\nthe tapes that recorded them: "
                      "DIR/NAME.dot, and DIR/NAME.png where Graphviz is installed.",
                      spec, (int)(sizeof spec / sizeof spec[0]));
    if (pc != 0) return pc > 0 ? 0 : 2;
    const drawing drawings[] = {
        {"elman3", "Elman network, 3 steps: a = b + W h + U x, h = tanh a, o = c + V h, L = sum L_t", 1},
        {"jordan3-teacher", "Jordan network, 3 steps, teacher forcing: the steps are independent", 1},
        {"jordan3-free", "Jordan network, 3 steps, free-running: o_{t-1} feeds step t", 1},
        {"elman6-checkpointed", "Elman network, 6 steps checkpointed every 3: one node per segment", 0},
    };
    ur_rng rng;
    ur_rng_seed(&rng, (uint64_t)seed);
    ur_tape *tp = ur_tape_new(0);
    if (!tp) {
        fprintf(stderr, "unfold: out of memory\n");
        return 1;
    }
    int rc = 0, told = 0;
    for (int d = 0; d < (int)(sizeof drawings / sizeof drawings[0]) && rc == 0; d++) {
        char dot[1024], png[1024];
        snprintf(dot, sizeof dot, "%s/%s.dot", dir, drawings[d].name);
        snprintf(png, sizeof png, "%s/%s.png", dir, drawings[d].name);
        ur_tape_reset(tp);
        ur_params *ps = ur_params_new();
        if (!ps || record(tp, ps, d, &rng) != 0) {
            ur_params_free(ps);
            rc = 1;
            break;
        }
        ur_dot_opts o = {drawings[d].clusters, 1, drawings[d].title};
        int written = ur_tape_write_dot_file(tp, dot, &o);
        ur_params_free(ps);
        if (written != 0) {
            perror(dot);
            rc = 1;
            break;
        }
        printf("%s: %d ops\n", dot, ur_tape_node_count(tp));
        if (no_png || told) continue;
        int r = ex_dot_to_png("unfold", dot, png);
        if (r < 0) rc = 1;
        else if (r > 0) told = 1; /* said once that Graphviz is missing; carry on */
        else printf("%s\n", png);
    }
    ur_tape_free(tp);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "unfold: cannot write to stdout\n");
        rc = 1;
    }
    return rc;
}
