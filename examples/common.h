/* Shared plumbing of the example programs: option parsing with validation and --help,
 * wall-clock time and progress lines with ETA, CSV logs, the OpenBLAS kernel notice, one
 * optimisation step and the training-loss bookkeeping. */
#ifndef UR_EXAMPLES_COMMON_H
#define UR_EXAMPLES_COMMON_H

#include <stdio.h>

#include "graph/ur_train.h"
#include "models/ur_models.h"

/* One command-line option: --name VALUE (or a bare --name for flags).
 *   EX_SMOKE: ptr is a NULL-terminated list of arguments ("--T=20", ...) that a bare --name
 *     applies before the command line's own, so options given beside it still win: a quick
 *     run for the tests, defined once per program and listed by --help.
 *   EX_CHOICE: ptr is an ex_choice, a string option with a fixed set of values. */
typedef enum { EX_INT, EX_FLOAT, EX_STRING, EX_FLAG, EX_SMOKE, EX_CHOICE } ex_type;
typedef struct ex_opt {
    const char *name;   /* without the leading dashes */
    ex_type type;
    void *ptr;          /* int *, float *, const char **, int * (flag set to 1), see above */
    double min, max;    /* accepted range for EX_INT / EX_FLOAT */
    const char *help;
} ex_opt;
typedef struct ex_choice {
    const char **value; /* set to the value given (one of choices) */
    const char *choices; /* the accepted values, separated by '|' */
} ex_choice;

/* Strict number parsing, the whole of s or nothing. An integer is an optional '-' and decimal
 * digits (no spaces, '+', hex, exponent or fraction); it must lie in [min, max]. A float is
 * [-]digits[.digits][e[+-]digits] (no spaces, '+', hex, inf or nan), finite, representable
 * as a normal float when not 0 (1e-400 is out of range, not "not a number"), in [min, max].
 * Each returns 0 and sets *out, or -1 with the reason in err (ranges printed as given). */
int ex_parse_int(const char *s, long long min, long long max, long long *out, char *err,
                 size_t errlen);
int ex_parse_float(const char *s, double min, double max, double *out, char *err, size_t errlen);

/* Parses argv[first..] against opts. Returns 0 when all is well, 1 when --help was printed
 * (the caller exits 0), -1 after printing a message about a bad argument (exit 2). usage is
 * the one-paragraph description printed above the option list. */
int ex_parse(int argc, char **argv, int first, const char *prog, const char *usage,
             const ex_opt *opts, int n_opts);

/* Makes a built-in cell by name, "elman", "lstm" or "gru" (in inputs, hidden units, parameters
 * named name.*); returns the constructor's status (ur_model_error() says why on failure). */
int ex_cell_init(ur_cell *cell, ur_params *ps, const char *kind, const char *name, int in,
                 int hidden, ur_rng *rng);

/* Seeds r with stream `stream` of the run's seed, so that each use of randomness in a program
 * (initialisation, training data, test data) has its own stream of the same --seed. */
void ex_rng_stream(ur_rng *r, int seed, unsigned stream);

/* Seconds since an arbitrary fixed point (monotonic clock). */
double ex_now(void);

/* Progress reporting for long runs: prints at most every interval seconds (and at the end). */
typedef struct ex_progress {
    double start, last;
    double interval;
    long total;         /* total steps, for the ETA */
} ex_progress;
/* Starts the clock for a run of total steps. */
void ex_progress_start(ex_progress *p, long total, double interval);
/* 1 if it is time to print a progress line for step (always for the last step). */
int ex_progress_due(ex_progress *p, long step);
/* Seconds since start and estimated seconds left after step of total. */
double ex_elapsed(const ex_progress *p);
double ex_eta(const ex_progress *p, long step);

/* Opens a CSV log at path and writes header (a comma-separated line without newline).
 * Returns NULL after printing a message when the file cannot be written. */
FILE *ex_csv_open(const char *path, const char *header);

/* Flushes and closes an output file (a log, a trace; NULL is ignored) and checks that every
 * write to it succeeded. 0, or -1 after printing "prog: cannot write path: reason". */
int ex_close_output(FILE *f, const char *path, const char *prog);
/* The same check for stdout (the results), without closing it. */
int ex_finish_stdout(const char *prog);

/* Tells the user once, on stderr, when OpenBLAS runs its slow generic kernel on a processor
 * that has AVX2 or AVX-512, and how to get the fast one (OPENBLAS_CORETYPE). */
void ex_blas_notice(void);

/* One optimisation step on loss: zero ps's gradients, backpropagate, clip the global gradient
 * norm to clip (not when clip <= 0), set the learning rate to lr and step opt. Returns 0 (and
 * the global gradient norm before clipping in *gnorm when not NULL, also when clip <= 0), or -1
 * after printing "prog: <tape error>" or the optimizer's refusal of a non-finite gradient. */
int ex_update(ur_tape *tp, ur_tensor *loss, ur_params *ps, ur_optim *opt, float clip, float lr,
              const char *prog, double *gnorm);

/* ---- Pictures: Graphviz and gnuplot, when installed --------------------------------------- */

/* 1 if an executable called name is on PATH. */
int ex_have_program(const char *name);
/* Renders the DOT file dot_path as the PNG png_path with Graphviz's dot. Returns 0 when the
 * PNG was written, 1 after telling the user (on stderr, as prog) that Graphviz is not
 * installed, -1 after printing why dot failed. */
int ex_dot_to_png(const char *prog, const char *dot_path, const char *png_path);
/* Runs gnuplot on script (which must `set output` to png_path itself). Returns 0 when the PNG
 * was written, 1 after telling the user that gnuplot is not installed, -1 after printing why
 * it failed. */
int ex_gnuplot(const char *prog, const char *script, const char *png_path);
/* Writes s into buf as a gnuplot single-quoted string ('' for each '); -1 if it does not fit. */
int ex_gnuplot_quote(char *buf, size_t len, const char *s);

/* Training-loss bookkeeping over a run of total steps. */
typedef struct ex_loss_track {
    long total, window;   /* steps in the run; steps averaged at each end */
    double ema;           /* weight of the newest loss in the running average */
    double first, last;   /* mean loss of the first and of the last window steps */
    double running;       /* exponential moving average of the loss (the first loss at step 0) */
    double recent_sum;    /* losses added since the last ex_loss_recent, and their count */
    long recent_n;
} ex_loss_track;
/* Starts the bookkeeping for total steps, window steps at each end, running-average weight ema. */
void ex_loss_start(ex_loss_track *lt, long total, long window, double ema);
/* Adds the loss of step (0-based). */
void ex_loss_add(ex_loss_track *lt, long step, double loss);
/* Mean loss since the previous call (or the start), and starts a new such mean. */
double ex_loss_recent(ex_loss_track *lt);

#endif
