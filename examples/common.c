#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void print_help(const char *prog, const char *usage, const ex_opt *opts, int n)
{
    printf("usage: %s [options]\n\n%s\n\noptions:\n", prog, usage);
    for (int k = 0; k < n; k++) {
        const ex_opt *o = &opts[k];
        char def[64] = "";
        const char *str = NULL;
        switch (o->type) {
        case EX_INT: snprintf(def, sizeof def, " N (default %d)", *(int *)o->ptr); break;
        case EX_FLOAT: snprintf(def, sizeof def, " X (default %g)", *(float *)o->ptr); break;
        case EX_STRING: str = *(const char **)o->ptr; break;
        case EX_CHOICE: str = *((const ex_choice *)o->ptr)->value; break;
        case EX_FLAG:
        case EX_SMOKE: break;
        }
        if (o->type == EX_STRING || o->type == EX_CHOICE)
            snprintf(def, sizeof def, " S%s%s%s", str ? " (default " : "", str ? str : "",
                     str ? ")" : "");
        printf("  --%s%s\n      %s", o->name, def, o->help);
        if (o->type == EX_CHOICE) printf(" (one of %s)", ((const ex_choice *)o->ptr)->choices);
        if (o->type == EX_SMOKE) {
            printf(":");
            for (const char *const *a = o->ptr; *a; a++) printf(" %s", *a);
        }
        printf("\n");
    }
    printf("  --help\n      print this help and exit\n");
}

/* Whether value is one of the '|'-separated choices. */
static int is_choice(const char *choices, const char *value)
{
    size_t len = strlen(value);
    for (const char *c = choices; *c;) {
        const char *end = strchr(c, '|');
        size_t n = end ? (size_t)(end - c) : strlen(c);
        if (n == len && strncmp(c, value, n) == 0) return 1;
        if (!end) break;
        c = end + 1;
    }
    return 0;
}

/* Stores value into option o (the checks every option's value gets); -1 after a message. */
static int set_value(const char *prog, const ex_opt *o, const char *value)
{
    if (o->type == EX_STRING || o->type == EX_CHOICE) {
        if (!*value) { fprintf(stderr, "%s: --%s needs a non-empty value\n", prog, o->name); return -1; }
        if (o->type == EX_STRING) {
            *(const char **)o->ptr = value;
            return 0;
        }
        const ex_choice *c = o->ptr;
        if (!is_choice(c->choices, value)) {
            fprintf(stderr, "%s: --%s: '%s' is not one of %s\n", prog, o->name, value, c->choices);
            return -1;
        }
        *c->value = value;
        return 0;
    }
    char err[256];
    if (o->type == EX_INT) {
        long long v;
        if (ex_parse_int(value, (long long)o->min, (long long)o->max, &v, err, sizeof err)) {
            fprintf(stderr, "%s: --%s: %s\n", prog, o->name, err);
            return -1;
        }
        *(int *)o->ptr = (int)v;
    } else {
        double v;
        if (ex_parse_float(value, o->min, o->max, &v, err, sizeof err) != 0) {
            fprintf(stderr, "%s: --%s: %s\n", prog, o->name, err);
            return -1;
        }
        *(float *)o->ptr = (float)v;
    }
    return 0;
}

/* Parses the n arguments args[] against opts (a smoke option is a no-op here: ex_parse applies
 * its list first). 0, or -1 after a message. */
static int parse_args(int n, const char *const *args, const char *prog, const ex_opt *opts,
                      int n_opts)
{
    for (int a = 0; a < n; a++) {
        const char *arg = args[a];
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", prog, arg);
            return -1;
        }
        const char *name = arg + 2, *value = NULL;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const ex_opt *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0) o = &opts[k];
        if (!o) {
            fprintf(stderr, "%s: unknown option '%s' (see --help)\n", prog, arg);
            return -1;
        }
        if (o->type == EX_FLAG || o->type == EX_SMOKE) {
            if (eq) { fprintf(stderr, "%s: --%s takes no value\n", prog, o->name); return -1; }
            if (o->type == EX_FLAG) *(int *)o->ptr = 1;
            continue;
        }
        if (eq) value = eq + 1;
        else if (a + 1 < n) value = args[++a];
        else { fprintf(stderr, "%s: --%s needs a value\n", prog, o->name); return -1; }
        if (set_value(prog, o, value) != 0) return -1;
    }
    return 0;
}

/* ---- Strict number parsing ----------------------------------------------------------------- */

static void num_err(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void num_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

int ex_parse_int(const char *s, long long min, long long max, long long *out, char *err,
                 size_t errlen)
{
    const char *p = s;
    if (*p == '-') p++;
    if (!is_digit(*p)) goto not_whole;
    for (const char *q = p; *q; q++)
        if (!is_digit(*q)) goto not_whole;
    /* Accumulate as a negative number (its range is the larger one), watching for overflow. */
    long long v = 0;
    int neg = *s == '-', overflow = 0;
    for (; *p; p++) {
        int d = *p - '0';
        if (v < (LLONG_MIN + d) / 10) overflow = 1;
        else v = v * 10 - d;
    }
    if (!overflow && !neg && v == LLONG_MIN) overflow = 1;
    if (overflow || (neg ? v : -v) < min || (neg ? v : -v) > max) {
        num_err(err, errlen, "%s is outside [%lld, %lld]", s, min, max);
        return -1;
    }
    *out = neg ? v : -v;
    return 0;
not_whole:
    num_err(err, errlen, "'%s' is not a whole number (decimal digits, an optional '-' first)", s);
    return -1;
}

/* 1 if s is a plain decimal number: [-]digits[.digits][e[+-]digits] or [-].digits[...]. */
static int decimal_syntax(const char *s)
{
    const char *p = s;
    if (*p == '-') p++;
    int digits = 0;
    while (is_digit(*p)) p++, digits++;
    if (*p == '.') {
        p++;
        while (is_digit(*p)) p++, digits++;
    }
    if (!digits) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!is_digit(*p)) return 0;
        while (is_digit(*p)) p++;
    }
    return *p == '\0';
}

int ex_parse_float(const char *s, double min, double max, double *out, char *err, size_t errlen)
{
    if (!decimal_syntax(s)) {
        num_err(err, errlen, "'%s' is not a number (decimal, e.g. 0.5, -3 or 1e-4)", s);
        return -1;
    }
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    int nonzero = 0; /* does the text name a value other than zero? */
    for (const char *p = s; *p && *p != 'e' && *p != 'E'; p++)
        if (*p >= '1' && *p <= '9') nonzero = 1;
    if ((errno == ERANGE && fabs(v) > 1.0) || !(fabs(v) <= FLT_MAX)) {
        num_err(err, errlen, "%s is out of range (too large in magnitude; accepted: [%g, %g])",
                s, min, max);
        return -1;
    }
    /* Underflow: strtod says so, or the value does not survive the float it is stored in. */
    if (nonzero && (errno == ERANGE || v == 0.0 || fabs(v) < FLT_MIN)) {
        num_err(err, errlen, "%s is out of range (too small in magnitude: it underflows to 0 "
                "or loses precision; accepted: [%g, %g])", s, min, max);
        return -1;
    }
    if (v < min || v > max) {
        num_err(err, errlen, "%s is outside [%g, %g]", s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int ex_parse(int argc, char **argv, int first, const char *prog, const char *usage,
             const ex_opt *opts, int n_opts)
{
    const char *const *args = (const char *const *)argv + first;
    int n = argc - first;
    for (int a = 0; a < n; a++)
        if (strcmp(args[a], "--help") == 0 || strcmp(args[a], "-h") == 0) {
            print_help(prog, usage, opts, n_opts);
            return 1;
        }
    /* A smoke option's list first, where the command line names it, so that its own
     * options win. */
    for (int k = 0; k < n_opts; k++) {
        if (opts[k].type != EX_SMOKE) continue;
        char want[64];
        snprintf(want, sizeof want, "--%s", opts[k].name);
        int given = 0, len = 0;
        for (int a = 0; a < n; a++) given |= strcmp(args[a], want) == 0;
        const char *const *list = opts[k].ptr;
        while (list[len]) len++;
        if (given && parse_args(len, list, prog, opts, n_opts) != 0) return -1;
    }
    return parse_args(n, args, prog, opts, n_opts);
}

int ex_cell_init(ur_cell *cell, ur_params *ps, const char *kind, const char *name, int in,
                 int hidden, ur_rng *rng)
{
    if (strcmp(kind, "lstm") == 0) return ur_lstm_cell(cell, ps, name, in, hidden, rng);
    if (strcmp(kind, "gru") == 0) return ur_gru_cell(cell, ps, name, in, hidden, rng);
    if (strcmp(kind, "elman") == 0) return ur_elman_cell(cell, ps, name, in, hidden, rng);
    fprintf(stderr, "ex_cell_init: no cell named '%s' (elman, lstm or gru)\n", kind);
    return -1;
}

void ex_rng_stream(ur_rng *r, int seed, unsigned stream)
{
    ur_rng_seed(r, (uint64_t)seed * 2654435761u + stream);
}

double ex_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ex_progress_start(ex_progress *p, long total, double interval)
{
    p->start = p->last = ex_now();
    p->interval = interval;
    p->total = total;
}

int ex_progress_due(ex_progress *p, long step)
{
    double now = ex_now();
    if (step + 1 >= p->total || now - p->last >= p->interval) {
        p->last = now;
        return 1;
    }
    return 0;
}

double ex_elapsed(const ex_progress *p) { return ex_now() - p->start; }

double ex_eta(const ex_progress *p, long step)
{
    double done = (double)(step + 1);
    return done > 0 ? ex_elapsed(p) * ((double)p->total - done) / done : 0.0;
}

FILE *ex_csv_open(const char *path, const char *header)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cannot write the log %s: %s\n", path, strerror(errno));
        return NULL;
    }
    fprintf(f, "%s\n", header);
    return f;
}

/* Flushes f and reports a write error that happened now or at any earlier write. */
static int flush_checked(FILE *f, int *err)
{
    errno = 0;
    int bad = fflush(f) != 0;
    if (bad) *err = errno;
    if (ferror(f)) bad = 1;
    return bad;
}

static void write_error(const char *prog, const char *what, int err)
{
    fprintf(stderr, "%s: cannot write %s: %s\n", prog, what,
            err ? strerror(err) : "write error (is the disk full?)");
}

int ex_close_output(FILE *f, const char *path, const char *prog)
{
    if (!f) return 0;
    int err = 0, bad = flush_checked(f, &err);
    errno = 0;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (bad) write_error(prog, path, err);
    return bad ? -1 : 0;
}

int ex_finish_stdout(const char *prog)
{
    int err = 0;
    if (!flush_checked(stdout, &err)) return 0;
    write_error(prog, "the standard output", err);
    return -1;
}

/* Declared by OpenBLAS; we declare it ourselves so any cblas.h will do. */
char *openblas_get_corename(void);

void ex_blas_notice(void)
{
    static int told;
    if (told) return;
    told = 1;
    const char *core = openblas_get_corename();
    if (!core || getenv("OPENBLAS_CORETYPE")) return;
    int generic = strcmp(core, "Prescott") == 0 || strcmp(core, "Core2") == 0 ||
                  strcmp(core, "Nehalem") == 0 || strcmp(core, "generic") == 0;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f"), avx2 = __builtin_cpu_supports("avx2");
#else
    int avx512 = 0, avx2 = 0;
#endif
    if (generic && (avx512 || avx2))
        fprintf(stderr,
                "note: OpenBLAS is running its generic '%s' kernel on a processor with %s; "
                "matrix products can be ~4x faster with\n      OPENBLAS_CORETYPE=%s\n",
                core, avx512 ? "AVX-512" : "AVX2", avx512 ? "SkylakeX" : "Haswell");
}

int ex_update(ur_tape *tp, ur_tensor *loss, ur_params *ps, ur_optim *opt, float clip, float lr,
              const char *prog, double *gnorm)
{
    ur_params_zero_grad(ps);
    if (ur_backward(tp, loss) != 0) {
        fprintf(stderr, "%s: %s\n", prog, ur_tape_error(tp));
        return -1;
    }
    /* The norm before clipping, logged whether or not clipping is on. */
    ur_clip_stats st = {ur_grad_norm(ps), 1.0, 0};
    if (clip > 0) ur_clip_grad_norm_stats(ps, clip, &st);
    if (gnorm) *gnorm = st.norm;
    ur_optim_set_lr(opt, lr);
    if (ur_optim_step(opt) != 0) { /* a NaN or Inf gradient: training diverged */
        fprintf(stderr, "%s: %s; try a lower --lr\n", prog, ur_optim_error(opt));
        return -1;
    }
    return 0;
}

void ex_loss_start(ex_loss_track *lt, long total, long window, double ema)
{
    memset(lt, 0, sizeof *lt);
    lt->total = total;
    lt->window = window;
    lt->ema = ema;
}

void ex_loss_add(ex_loss_track *lt, long step, double loss)
{
    if (step < lt->window) lt->first += loss / (double)lt->window;
    if (step >= lt->total - lt->window) lt->last += loss / (double)lt->window;
    lt->running = step == 0 ? loss : (1.0 - lt->ema) * lt->running + lt->ema * loss;
    lt->recent_sum += loss;
    lt->recent_n++;
}

double ex_loss_recent(ex_loss_track *lt)
{
    double mean = lt->recent_n > 0 ? lt->recent_sum / (double)lt->recent_n : 0.0;
    lt->recent_sum = 0.0;
    lt->recent_n = 0;
    return mean;
}

int ex_have_program(const char *name)
{
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/bin:/bin";
    char buf[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        int len = snprintf(buf, sizeof buf, "%.*s/%s", (int)n, n ? path : ".", name);
        if (len > 0 && (size_t)len < sizeof buf && access(buf, X_OK) == 0) return 1;
        path += n;
        if (*path == ':') path++;
    }
    return 0;
}

/* 0 when path is a non-empty regular file. */
static int non_empty(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 ? 0 : -1;
}

int ex_dot_to_png(const char *prog, const char *dot_path, const char *png_path)
{
    if (!ex_have_program("dot")) {
        fprintf(stderr, "%s: Graphviz is not installed (apt-get install graphviz): %s not drawn "
                "as %s\n", prog, dot_path, png_path);
        return 1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: cannot run dot: %s\n", prog, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        execlp("dot", "dot", "-Tpng", "-o", png_path, dot_path, (char *)NULL);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(stderr, "%s: waiting for dot: %s\n", prog, strerror(errno));
            return -1;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || non_empty(png_path) != 0) {
        fprintf(stderr, "%s: dot failed to draw %s from %s\n", prog, png_path, dot_path);
        return -1;
    }
    return 0;
}

int ex_gnuplot(const char *prog, const char *script, const char *png_path)
{
    if (!ex_have_program("gnuplot")) {
        fprintf(stderr, "%s: gnuplot is not installed (apt-get install gnuplot-nox): %s not "
                "drawn\n", prog, png_path);
        return 1;
    }
    fflush(NULL);
    FILE *p = popen("gnuplot", "w");
    if (!p) {
        fprintf(stderr, "%s: cannot run gnuplot: %s\n", prog, strerror(errno));
        return -1;
    }
    int wrote = fputs(script, p) >= 0;
    int status = pclose(p);
    if (!wrote || status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        non_empty(png_path) != 0) {
        fprintf(stderr, "%s: gnuplot failed to draw %s\n", prog, png_path);
        return -1;
    }
    return 0;
}

int ex_gnuplot_quote(char *buf, size_t len, const char *s)
{
    size_t k = 0;
    if (len < 3) return -1;
    buf[k++] = '\'';
    for (; *s; s++) {
        if (k + 3 >= len) return -1;
        if (*s == '\'') buf[k++] = '\'';
        buf[k++] = *s;
    }
    buf[k++] = '\'';
    buf[k] = '\0';
    return 0;
}
