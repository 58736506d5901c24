/* caption: image captioning on a generated data set (one-to-many, conditioned).
 *
 * Images: 18 x 18 pixels, 3 channels (red, green, blue), a 3 x 3 grid of 6-pixel cells holding
 * one to three shapes (circle, square, triangle) in four colours (red, green, blue, yellow),
 * large (5 pixels) or small (3), each centred in its cell (--jitter N moves it by up to N
 * pixels), plus a little Gaussian noise (--noise). The caption is a function of the scene,
 * from a small grammar:
 *     one shape     "a red circle on the left" / "in the middle" / "on the right" (its column)
 *     two shapes    "a red circle left of a small blue square"
 *     three shapes  "a red circle left of a small blue square and a green triangle below it"
 * Shapes are named in a fixed order (by shape, then colour, size and cell); a relation says
 * where the first shape lies from the second: "left of" / "right of" when the columns differ
 * at least as much as the rows, else "above" / "below". "small" marks small shapes. So
 * captions have 6 to 18 words, and a batch mixes them all.
 *
 * Held-out images: a scene (its shapes, colours, sizes and cells) is held out when a hash of
 * it is 0 modulo 10; training never draws one, so every test image shows a combination never
 * seen in training.
 *
 * Model: an MLP encoder over the pixels, z = tanh(x W1 + b1), [h0 | c0] = z W2 + b2, gives
 * the initial state (tanh(h0), c0) of an LSTM decoder that reads word embeddings and emits
 * a softmax over the words. Training uses teacher forcing on captions of uneven lengths in
 * one batch: the decoder reads <start> w_1 .. w_n and is scored on w_1 .. w_n <end>, padded to
 * the batch's longest caption with a length per row (ur_unroll_with) and a masked loss
 * (ur_softmax_nll_masked), so padding costs no gradient. Test: greedy and beam decoding
 * (ur_beam_decode; width 1 is greedy), scored by corpus BLEU-4 and exact match.
 *
 * Shapes: B = batch, T = longest caption + 1, P = 972 pixels, Z = encoder width, E =
 * embedding, H = hidden, V = 22 words. Decoder inputs are time-stacked: row t*B + b. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "examples/bleu.h"
#include "examples/common.h"
#include "graph/ur_train.h"
#include "unroll.h"

enum { GRID = 3, CELL = 6, SIDE = GRID * CELL, CHANNELS = 3, PIXELS = SIDE * SIDE * CHANNELS };
enum { CIRCLE, SQUARE, TRIANGLE, N_SHAPES };
enum { RED, GREEN, BLUE, YELLOW, N_COLOURS };
/* The longest caption: three small shapes, two horizontal relations (4 + 2 + 4 + 1 + 4 + 2 + 1). */
enum { MAX_OBJECTS = 3, MAX_WORDS = 18, MAX_TOKENS = MAX_WORDS + 1 };

static const char *const vocab[] = {"<start>", "<end>", "a", "small", "red", "green", "blue",
                                    "yellow", "circle", "square", "triangle", "left", "right",
                                    "of", "above", "below", "and", "it", "on", "the", "in",
                                    "middle"};
enum { W_START, W_END, W_A, W_SMALL, W_RED, W_CIRCLE = W_RED + N_COLOURS,
       W_LEFT = W_CIRCLE + N_SHAPES, W_RIGHT, W_OF, W_ABOVE, W_BELOW, W_AND, W_IT, W_ON, W_THE,
       W_IN, W_MIDDLE, VOCAB };
static const char colour_letter[N_COLOURS] = {'R', 'G', 'B', 'Y'};
static const float colour_rgb[N_COLOURS][CHANNELS] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}};

/* Bitmaps, large (5 x 5) and small (3 x 3), rows top to bottom. */
static const char *const large_shape[N_SHAPES][5] = {
    {".###.", "#####", "#####", "#####", ".###."},
    {"#####", "#####", "#####", "#####", "#####"},
    {"..#..", ".###.", ".###.", "#####", "#####"}};
static const char *const small_shape[N_SHAPES][3] = {
    {".#.", "###", ".#."}, {"###", "###", "###"}, {".#.", "###", "###"}};

/* ---- Scenes, images and captions -------------------------------------------------------- */

typedef struct object {
    int shape, colour, small, cell; /* cell = row * GRID + column */
    int ox, oy;                     /* offset of the bitmap inside the cell */
} object;

typedef struct scene {
    int n;
    object obj[MAX_OBJECTS]; /* in caption order */
} scene;

static int object_cmp(const void *a, const void *b)
{
    const object *x = a, *y = b;
    int kx[4] = {x->shape, x->colour, x->small, x->cell}, ky[4] = {y->shape, y->colour, y->small,
                                                                   y->cell};
    for (int k = 0; k < 4; k++)
        if (kx[k] != ky[k]) return kx[k] < ky[k] ? -1 : 1;
    return 0;
}

/* FNV-1a over what the caption depends on (not the offsets): 0 modulo 10 is held out. */
static int held_out(const scene *s)
{
    uint32_t h = 2166136261u;
    for (int k = 0; k < s->n; k++) {
        const object *o = &s->obj[k];
        int v[4] = {o->shape, o->colour, o->small, o->cell};
        for (int j = 0; j < 4; j++) h = (h ^ (uint32_t)(v[j] + 1)) * 16777619u;
    }
    h = (h ^ (uint32_t)s->n) * 16777619u;
    return h % 10 == 0;
}

/* A random scene of 1 to max_objects shapes in distinct cells, held out or not as asked;
 * each shape sits within jitter pixels of its cell's centre. */
static void draw_scene(ur_rng *r, int max_objects, int jitter, int test, scene *s)
{
    do {
        s->n = 1 + (int)ur_rng_below(r, (uint32_t)max_objects);
        int used = 0;
        for (int k = 0; k < s->n; k++) {
            object *o = &s->obj[k];
            do o->cell = (int)ur_rng_below(r, GRID * GRID);
            while (used & (1 << o->cell));
            used |= 1 << o->cell;
            o->shape = (int)ur_rng_below(r, N_SHAPES);
            o->colour = (int)ur_rng_below(r, N_COLOURS);
            o->small = (int)ur_rng_below(r, 2);
            int room = CELL - (o->small ? 3 : 5), mid = room / 2;
            int lo = mid - jitter < 0 ? 0 : mid - jitter;
            int hi = mid + jitter > room ? room : mid + jitter;
            o->ox = lo + (int)ur_rng_below(r, (uint32_t)(hi - lo + 1));
            o->oy = lo + (int)ur_rng_below(r, (uint32_t)(hi - lo + 1));
        }
        qsort(s->obj, (size_t)s->n, sizeof s->obj[0], object_cmp);
    } while (held_out(s) != test);
}

/* The image of s: P floats, channel-last (pixel (y, x) channel c at (y*SIDE + x)*3 + c). */
static void render(const scene *s, float noise, ur_rng *r, float *img)
{
    memset(img, 0, PIXELS * sizeof *img);
    for (int k = 0; k < s->n; k++) {
        const object *o = &s->obj[k];
        int size = o->small ? 3 : 5;
        int y0 = (o->cell / GRID) * CELL + o->oy, x0 = (o->cell % GRID) * CELL + o->ox;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                char c = o->small ? small_shape[o->shape][y][x] : large_shape[o->shape][y][x];
                if (c != '#') continue;
                float *p = img + ((size_t)(y0 + y) * SIDE + x0 + x) * CHANNELS;
                for (int ch = 0; ch < CHANNELS; ch++) p[ch] = colour_rgb[o->colour][ch];
            }
    }
    if (noise > 0)
        for (int k = 0; k < PIXELS; k++) img[k] += noise * ur_rng_normal(r);
}

/* "a [small] <colour> <shape>" at words; returns the number of words. */
static int name_object(const object *o, int *words)
{
    int n = 0;
    words[n++] = W_A;
    if (o->small) words[n++] = W_SMALL;
    words[n++] = W_RED + o->colour;
    words[n++] = W_CIRCLE + o->shape;
    return n;
}

/* Where a lies from b: "left of", "right of", "above" or "below". */
static int relation(const object *a, const object *b, int *words)
{
    int dx = a->cell % GRID - b->cell % GRID, dy = a->cell / GRID - b->cell / GRID;
    if (abs(dx) >= abs(dy)) {
        words[0] = dx < 0 ? W_LEFT : W_RIGHT;
        words[1] = W_OF;
        return 2;
    }
    words[0] = dy < 0 ? W_ABOVE : W_BELOW;
    return 1;
}

/* The caption of s (word ids, no start or end); returns its length. */
static int caption_of(const scene *s, int *words)
{
    int n = name_object(&s->obj[0], words);
    if (s->n == 1) {
        static const int where[GRID][3] = {{W_ON, W_THE, W_LEFT}, {W_IN, W_THE, W_MIDDLE},
                                           {W_ON, W_THE, W_RIGHT}};
        memcpy(words + n, where[s->obj[0].cell % GRID], sizeof where[0]);
        return n + 3;
    }
    n += relation(&s->obj[0], &s->obj[1], words + n);
    n += name_object(&s->obj[1], words + n);
    if (s->n == 3) {
        words[n++] = W_AND;
        n += name_object(&s->obj[2], words + n);
        n += relation(&s->obj[2], &s->obj[1], words + n);
        words[n++] = W_IT;
    }
    return n;
}

static void print_words(FILE *f, const int *w, int n)
{
    for (int k = 0; k < n; k++) fprintf(f, "%s%s", k ? " " : "", vocab[w[k]]);
}

/* ---- The model ----------------------------------------------------------------------------- */

typedef struct config {
    int steps, batch, hidden, embed, enc, objects, jitter, beam, test, eval_every, show, seed;
    float lr, clip, noise, alpha;
    const char *log, *plot;
} config;

typedef struct model {
    ur_params *ps;
    ur_tensor *W1, *b1, *W2, *b2; /* encoder: P -> Z (tanh) -> 2H = [h0 | c0] */
    ur_tensor *emb;               /* V x E */
    ur_cell dec;                  /* LSTM, E -> H */
    ur_tensor *V, *c;             /* head: H x V, 1 x V */
} model;

static int model_init(model *m, const config *cfg, ur_rng *rng)
{
    memset(m, 0, sizeof *m);
    if (!(m->ps = ur_params_new())) return -1;
    float kp = 1.0f / sqrtf((float)PIXELS), kz = 1.0f / sqrtf((float)cfg->enc);
    float kh = 1.0f / sqrtf((float)cfg->hidden);
    m->W1 = ur_model_param(m->ps, "enc", "W1", PIXELS, cfg->enc, kp * sqrtf(3.0f), rng);
    m->b1 = ur_model_param(m->ps, "enc", "b1", 1, cfg->enc, kp, rng);
    m->W2 = ur_model_param(m->ps, "enc", "W2", cfg->enc, 2 * cfg->hidden, kz, rng);
    m->b2 = ur_model_param(m->ps, "enc", "b2", 1, 2 * cfg->hidden, kz, rng);
    m->emb = ur_model_param(m->ps, "embed", "E", VOCAB, cfg->embed, 1.0f, rng);
    if (!m->W1 || !m->b1 || !m->W2 || !m->b2 || !m->emb ||
        ur_lstm_cell(&m->dec, m->ps, "dec", cfg->embed, cfg->hidden, rng) != 0)
        return -1;
    m->V = ur_model_param(m->ps, "head", "V", cfg->hidden, VOCAB, kh, rng);
    m->c = ur_model_param(m->ps, "head", "c", 1, VOCAB, kh, rng);
    return m->V && m->c ? 0 : -1;
}

/* The decoder's initial state from B images (B x P). */
static ur_state encode(ur_tape *tp, const model *m, const float *img, int B)
{
    ur_tensor *z = ur_tanh(tp, ur_linear(tp, ur_input_from(tp, B, PIXELS, img), m->W1, m->b1));
    ur_tensor *hc[2] = {NULL, NULL};
    ur_split_cols(tp, ur_linear(tp, z, m->W2, m->b2), 2, hc);
    ur_state s = {ur_tanh(tp, hc[0]), hc[1]};
    return ur_tape_error(tp) ? (ur_state){NULL, NULL} : s;
}

/* A batch: B scenes, their images, the decoder's inputs, targets and lengths. */
typedef struct batch {
    int cap, B, T;     /* room for cap images; B in use; T: the longest caption + 1 */
    scene *sc;
    float *img;        /* B x P */
    int *words;        /* B x MAX_WORDS */
    int *n_words;      /* B */
    int *lengths;      /* B: n_words + 1 decoder steps */
    int *dec_in, *dec_out; /* MAX_TOKENS x B, time-stacked */
} batch;

static int batch_alloc(batch *b, int B)
{
    memset(b, 0, sizeof *b);
    b->cap = B;
    b->sc = malloc((size_t)B * sizeof *b->sc);
    b->img = malloc((size_t)B * PIXELS * sizeof *b->img);
    b->words = malloc((size_t)B * MAX_WORDS * sizeof *b->words);
    b->n_words = malloc((size_t)B * sizeof *b->n_words);
    b->lengths = malloc((size_t)B * sizeof *b->lengths);
    b->dec_in = malloc((size_t)B * MAX_TOKENS * sizeof *b->dec_in);
    b->dec_out = malloc((size_t)B * MAX_TOKENS * sizeof *b->dec_out);
    return b->sc && b->img && b->words && b->n_words && b->lengths && b->dec_in && b->dec_out
               ? 0 : -1;
}

static void batch_free(batch *b)
{
    free(b->sc);
    free(b->img);
    free(b->words);
    free(b->n_words);
    free(b->lengths);
    free(b->dec_in);
    free(b->dec_out);
}

/* Fills b with B scenes (drawn, or copied from given), their images and teacher-forcing rows:
 * dec_in = <start> w_1 .. w_n, dec_out = w_1 .. w_n <end>, padded to T. */
static void batch_fill(batch *b, int B, const scene *given, ur_rng *r, const config *cfg, int test)
{
    b->B = B;
    b->T = 0;
    for (int i = 0; i < B; i++) {
        if (given) b->sc[i] = given[i];
        else draw_scene(r, cfg->objects, cfg->jitter, test, &b->sc[i]);
        render(&b->sc[i], cfg->noise, r, b->img + (size_t)i * PIXELS);
        b->n_words[i] = caption_of(&b->sc[i], b->words + (size_t)i * MAX_WORDS);
        b->lengths[i] = b->n_words[i] + 1;
        if (b->lengths[i] > b->T) b->T = b->lengths[i];
    }
    for (int t = 0; t < b->T; t++)
        for (int i = 0; i < B; i++) {
            const int *w = b->words + (size_t)i * MAX_WORDS;
            int n = b->n_words[i];
            b->dec_in[t * B + i] = t == 0 ? W_START : t <= n ? w[t - 1] : W_START; /* padding */
            b->dec_out[t * B + i] = t < n ? w[t] : W_END; /* past the end: masked */
        }
}

/* The teacher-forced loss of b: the mean NLL over its real tokens. */
static ur_tensor *caption_loss(ur_tape *tp, const model *m, const batch *b)
{
    ur_state h = encode(tp, m, b->img, b->B);
    if (!h.h) return ur_tape_poison(tp);
    ur_tensor *x = ur_embedding(tp, m->emb, b->dec_in, b->T * b->B);
    ur_unroll_opts uo = {.lengths = b->lengths};
    ur_seq d;
    if (ur_unroll_with(tp, &m->dec, x, b->T, h, &uo, &d) != 0) return ur_tape_poison(tp);
    ur_tensor *logits = ur_linear(tp, d.H, m->V, m->c);
    return ur_softmax_nll_masked(tp, logits, b->dec_out, d.mask, UR_MEAN);
}

/* ---- Evaluation ----------------------------------------------------------------------------- */

typedef struct scores {
    double bleu, exact;
} scores;

/* BLEU-4 and exact match of decoder bs on the first n test scenes (batches of up to
 * b->cap); when keep is not NULL, the first n_keep hypotheses' words and lengths go there. */
static int evaluate(ur_tape *tp, const model *m, ur_beam *bs, const scene *test, int n,
                    const config *cfg, batch *b, int n_keep, int *keep, int *keep_len,
                    scores *out)
{
    ex_bleu bl;
    ex_bleu_start(&bl);
    ur_rng noise_rng; /* the same noise every evaluation */
    ur_rng_seed(&noise_rng, (uint64_t)cfg->seed * 7919u + 17u);
    long exact = 0;
    for (int done = 0; done < n; done += b->cap) {
        int B = n - done < b->cap ? n - done : b->cap;
        batch_fill(b, B, test + done, &noise_rng, cfg, 1);
        ur_tape_reset(tp);
        ur_state h = encode(tp, m, b->img, B);
        if (!h.h) {
            fprintf(stderr, "caption: %s\n", ur_tape_error(tp));
            return -1;
        }
        if (ur_beam_decode(bs, B, h, MAX_TOKENS) != 0) {
            fprintf(stderr, "caption: %s\n", ur_beam_error(bs));
            return -1;
        }
        for (int i = 0; i < B; i++) {
            ur_beam_hyp y = ur_beam_best(bs, i);
            const int *ref = b->words + (size_t)i * MAX_WORDS;
            int rn = b->n_words[i];
            ex_bleu_add(&bl, y.tokens, y.len, ref, rn);
            exact += y.ended && y.len == rn && memcmp(y.tokens, ref, (size_t)rn * sizeof *ref) == 0;
            if (keep && done + i < n_keep) {
                int len = y.len < MAX_TOKENS ? y.len : MAX_TOKENS;
                memcpy(keep + (size_t)(done + i) * MAX_TOKENS, y.tokens, (size_t)len * sizeof(int));
                keep_len[done + i] = len;
            }
        }
    }
    out->bleu = ex_bleu_score(&bl);
    out->exact = (double)exact / (double)n;
    return 0;
}

/* The image of s as text: '.' for background, R/G/B/Y for a shape's colour. */
static void print_image(const scene *s)
{
    char rows[SIDE][SIDE + 1];
    for (int y = 0; y < SIDE; y++) {
        memset(rows[y], '.', SIDE);
        rows[y][SIDE] = '\0';
    }
    for (int k = 0; k < s->n; k++) {
        const object *o = &s->obj[k];
        int size = o->small ? 3 : 5;
        int y0 = (o->cell / GRID) * CELL + o->oy, x0 = (o->cell % GRID) * CELL + o->ox;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                char c = o->small ? small_shape[o->shape][y][x] : large_shape[o->shape][y][x];
                if (c == '#') rows[y0 + y][x0 + x] = colour_letter[o->colour];
            }
    }
    for (int y = 0; y < SIDE; y++) printf("    %s\n", rows[y]);
}

/* ---- Plot ----------------------------------------------------------------------------------- */

/* The loss curve and the held-out scores from the CSV log, drawn by gnuplot as png. 0, 1 when
 * gnuplot is not installed (said, not an error), or -1 after a message. */
static int plot(const char *csv, const char *png)
{
    char c[1024], p[1024], script[4096];
    if (ex_gnuplot_quote(c, sizeof c, csv) != 0 || ex_gnuplot_quote(p, sizeof p, png) != 0) {
        fprintf(stderr, "caption: file names too long for the plot\n");
        return -1;
    }
    int n = snprintf(script, sizeof script,
                     "set terminal png size 1000,420\nset output %s\n"
                     "set datafile separator ','\nset key autotitle columnhead\n"
                     "set multiplot layout 1,2\nset xlabel 'step'\nset logscale y\n"
                     "set title 'training loss (mean NLL per token)'\n"
                     "plot %s using 1:2 with lines notitle\nunset logscale y\nset yrange [0:1]\n"
                     "set title 'held-out BLEU-4 and exact match (greedy)'\n"
                     "plot %s using 1:5 with linespoints title 'BLEU-4', "
                     "%s using 1:6 with linespoints title 'exact match'\nunset multiplot\n",
                     p, c, c, c);
    if (n < 0 || (size_t)n >= sizeof script) {
        fprintf(stderr, "caption: the plot script is too long\n");
        return -1;
    }
    return ex_gnuplot("caption", script, png);
}

/* Everything one run holds. */
typedef struct run {
    model m;
    ur_optim *opt;
    ur_beam *greedy, *beam; /* decoders of width 1 and --beam */
    batch tr, ev;
    scene *test;            /* the held-out scenes */
    int n_show, *shown, *shown_len; /* the captions of the images printed, greedy then beam */
    ur_tape *tp;
    FILE *log;
} run;

/* Builds the model, optimizer, decoders, batches and held-out scenes; 0, or -1 after a message. */
static int run_init(run *r, const config *cfg, ur_rng *rng)
{
    char err[256] = "";
    if (model_init(&r->m, cfg, rng) != 0) {
        fprintf(stderr, "caption: cannot build the model: %s\n",
                ur_model_error() ? ur_model_error() : "out of memory");
        return -1;
    }
    ur_optim_config oc = ur_optim_defaults(UR_OPTIM_ADAM);
    oc.lr = cfg->lr;
    r->opt = ur_optim_new(r->m.ps, &oc, err, sizeof err);
    ur_beam_opts bo = {.width = 1, .start = W_START, .end = W_END, .max_len = MAX_TOKENS,
                       .length_alpha = cfg->alpha, .embed = r->m.emb, .head_w = r->m.V,
                       .head_b = r->m.c};
    r->greedy = ur_beam_new(&r->m.dec, &bo, cfg->batch);
    bo.width = cfg->beam;
    if (r->greedy) r->beam = ur_beam_new(&r->m.dec, &bo, cfg->batch);
    r->test = malloc((size_t)cfg->test * sizeof *r->test);
    r->n_show = cfg->show < cfg->test ? cfg->show : cfg->test;
    r->shown = malloc((size_t)(2 * r->n_show + 1) * MAX_TOKENS * sizeof *r->shown);
    r->shown_len = malloc((size_t)(2 * r->n_show + 1) * sizeof *r->shown_len);
    r->tp = ur_tape_new(0);
    if (!r->opt || !r->beam || !r->test || !r->shown || !r->shown_len || !r->tp ||
        batch_alloc(&r->tr, cfg->batch) != 0 || batch_alloc(&r->ev, cfg->batch) != 0) {
        fprintf(stderr, "caption: %s\n",
                !r->opt ? err : !r->beam ? ur_model_error() : "out of memory");
        return -1;
    }
    ur_rng test_rng;
    ur_rng_seed(&test_rng, (uint64_t)cfg->seed * 7919u + 101u);
    for (int i = 0; i < cfg->test; i++)
        draw_scene(&test_rng, cfg->objects, cfg->jitter, 1, &r->test[i]);
    return 0;
}

static void run_free(run *r)
{
    ur_beam_free(r->greedy);
    ur_beam_free(r->beam);
    ur_tape_free(r->tp);
    batch_free(&r->tr);
    batch_free(&r->ev);
    free(r->test);
    free(r->shown);
    free(r->shown_len);
    ur_optim_free(r->opt);
    ur_params_free(r->m.ps);
}

/* Trains with teacher forcing on batches of uneven caption lengths, checking the held-out
 * scenes (greedy) every --eval-every steps; progress lines and a CSV row per step. tokens gets
 * the caption tokens trained on. 0, or -1 after a message. */
static int train(run *r, const config *cfg, ur_rng *data, ex_loss_track *lt, double *tokens,
                 double *seconds)
{
    ex_loss_start(lt, cfg->steps, cfg->steps >= 100 ? 20 : 5, 0.02);
    ex_progress pg;
    ex_progress_start(&pg, cfg->steps, 2.0);
    int n_check = cfg->test / 5 > 0 ? cfg->test / 5 : 1;
    for (long step = 0; step < cfg->steps; step++) {
        batch_fill(&r->tr, cfg->batch, NULL, data, cfg, 0);
        ur_tape_reset(r->tp);
        ur_tensor *loss = caption_loss(r->tp, &r->m, &r->tr);
        if (ex_update(r->tp, loss, r->m.ps, r->opt, cfg->clip,
                      ur_lr_cosine(cfg->lr, step, cfg->steps, 100, 0.1f * cfg->lr), "caption",
                      NULL) != 0)
            return -1;
        double l = loss->val[0];
        for (int i = 0; i < cfg->batch; i++) *tokens += r->tr.lengths[i];
        ex_loss_add(lt, step, l);
        scores sc = {-1, -1};
        if (cfg->eval_every > 0 && (step + 1) % cfg->eval_every == 0 && step + 1 < cfg->steps &&
            evaluate(r->tp, &r->m, r->greedy, r->test, n_check, cfg, &r->ev, 0, NULL, NULL,
                     &sc) != 0)
            return -1;
        double el = ex_elapsed(&pg), tps = *tokens / (el > 0 ? el : 1e-9);
        fprintf(r->log, "%ld,%.6f,%.0f,%.2f,", step + 1, l, tps, el);
        if (sc.bleu >= 0) fprintf(r->log, "%.4f,%.4f\n", sc.bleu, sc.exact);
        else fprintf(r->log, ",\n");
        if (ex_progress_due(&pg, step) || sc.bleu >= 0) {
            printf("step %5ld/%d  loss %.4f  %7.0f tokens/s  elapsed %5.1fs  ETA %5.1fs",
                   step + 1, cfg->steps, lt->running, tps, el, ex_eta(&pg, step));
            if (sc.bleu >= 0)
                printf("  held-out greedy BLEU-4 %.3f, exact %.1f%%", sc.bleu, 100 * sc.exact);
            printf("\n");
            fflush(stdout);
        }
    }
    *seconds = ex_elapsed(&pg);
    return 0;
}

/* The first images with their reference, greedy and beam captions, and both scores. */
static void report(const run *r, const config *cfg, const scores *g, const scores *bm,
                   const double t[3])
{
    int n_show = r->n_show;
    for (int i = 0; i < n_show; i++) {
        int ref[MAX_WORDS], rn = caption_of(&r->test[i], ref);
        printf("\nheld-out image %d:\n", i + 1);
        print_image(&r->test[i]);
        printf("  reference: ");
        print_words(stdout, ref, rn);
        printf("\n  greedy:    ");
        print_words(stdout, r->shown + i * MAX_TOKENS, r->shown_len[i]);
        printf("\n  beam %-2d:   ", cfg->beam);
        print_words(stdout, r->shown + (n_show + i) * MAX_TOKENS, r->shown_len[n_show + i]);
        printf("\n");
    }
    printf("\nheld-out images: %d (scenes never seen in training)\n", cfg->test);
    printf("  greedy        BLEU-4 %.4f  exact match %6.2f%%  (%.2fs)\n", g->bleu, 100 * g->exact,
           t[1] - t[0]);
    printf("  beam of %-4d  BLEU-4 %.4f  exact match %6.2f%%  (%.2fs)\n", cfg->beam, bm->bleu,
           100 * bm->exact, t[2] - t[1]);
}

int main(int argc, char **argv)
{
    config cfg = {.steps = 5000, .batch = 64, .hidden = 128, .embed = 32, .enc = 256,
                  .objects = 3, .jitter = 0, .beam = 5, .test = 500, .eval_every = 500,
                  .show = 4, .seed = 1, .lr = 3e-3f, .clip = 5.0f, .noise = 0.05f, .alpha = 1.0f,
                  .log = "caption.csv",
                  .plot = "caption.png"};
    const ex_opt opts[] = {
        {"steps", EX_INT, &cfg.steps, 1, 1e7, "training steps"},
        {"batch", EX_INT, &cfg.batch, 1, 4096, "images per step (captions of mixed lengths)"},
        {"hidden", EX_INT, &cfg.hidden, 1, 4096, "LSTM decoder hidden units"},
        {"embed", EX_INT, &cfg.embed, 1, 4096, "word embedding size"},
        {"enc", EX_INT, &cfg.enc, 1, 8192, "encoder (MLP over the pixels) hidden units"},
        {"objects", EX_INT, &cfg.objects, 1, MAX_OBJECTS, "at most this many shapes per image"},
        {"jitter", EX_INT, &cfg.jitter, 0, CELL, "a shape lies within this many pixels of its "
                                                   "cell's centre"},
        {"noise", EX_FLOAT, &cfg.noise, 0, 10, "standard deviation of the pixel noise"},
        {"lr", EX_FLOAT, &cfg.lr, 1e-6, 10, "Adam learning rate (cosine decay to a tenth)"},
        {"clip", EX_FLOAT, &cfg.clip, 1e-3, 1e6, "global gradient-norm clipping threshold"},
        {"beam", EX_INT, &cfg.beam, 1, 64, "beam width of the second decoding (1: greedy)"},
        {"length-alpha", EX_FLOAT, &cfg.alpha, 0, 10,
         "beam length normalisation: rank by log P / length^alpha (0: log P, which favours "
         "short captions that BLEU-4's brevity penalty then punishes)"},
        {"test", EX_INT, &cfg.test, 1, 1e6, "held-out images for the final scores"},
        {"eval-every", EX_INT, &cfg.eval_every, 0, 1e7,
         "steps between held-out checks (greedy, on the first fifth of --test; 0: none)"},
        {"show", EX_INT, &cfg.show, 0, 1000, "held-out images printed with their captions"},
        {"seed", EX_INT, &cfg.seed, 0, 2147483647, "random seed (same seed, same run)"},
        {"log", EX_STRING, &cfg.log, 0, 0,
         "CSV log: step,loss,tokens_per_s,seconds,bleu,exact (the last two when evaluated)"},
        {"plot", EX_STRING, &cfg.plot, 0, 0,
         "PNG plot of the log, drawn by gnuplot when it is installed ('none': no plot)"},
        {"smoke", EX_SMOKE,
         (const char *[]){"--steps=80", "--hidden=32", "--enc=64", "--batch=32", "--test=64",
                          "--eval-every=40", "--show=1", NULL},
         0, 0, "short run for the test suite"},
    };
    const char *usage =
        "Image captioning on a generated data set: 18x18 images of one to three coloured\n"
        "shapes (circle, square, triangle; red, green, blue, yellow; large or small) in a 3x3\n"
        "grid, with captions from a small grammar such as \"a red circle left of a small blue\n"
        "square\". An MLP encoder over the pixels gives the initial state of an LSTM decoder;\n"
        "training uses teacher forcing on captions of uneven lengths in one batch (a length\n"
        "per row, masked loss). Reports corpus BLEU-4 and exact match on held-out scenes\n"
        "(combinations never seen in training) for greedy and beam decoding, and prints a\n"
        "few images as text with their captions. The last line is machine-readable:\n"
        "result: bleu_greedy=... bleu_beam=... exact_greedy=... exact_beam=... ...";
    int pr = ex_parse(argc, argv, 1, "caption", usage, opts, (int)(sizeof opts / sizeof opts[0]));
    if (pr != 0) return pr > 0 ? 0 : 2;
    ex_blas_notice();

    ur_rng rng, data;
    ur_rng_seed(&rng, (uint64_t)cfg.seed);
    ex_rng_stream(&data, cfg.seed, 5);
    run r = {0};
    ex_loss_track lt;
    scores g, bm;
    double tokens = 0.0, train_s = 0.0, t[3];
    int rc = 1;
    if (!(r.log = ex_csv_open(cfg.log, "step,loss,tokens_per_s,seconds,bleu,exact"))) goto done;
    if (run_init(&r, &cfg, &rng) != 0) goto done;
    printf("caption: %dx%d images of 1-%d shapes, LSTM %d hidden, encoder %d, %zu parameters, "
           "%d steps of %d\n", SIDE, SIDE, cfg.objects, cfg.hidden, cfg.enc,
           ur_params_numel(r.m.ps), cfg.steps, cfg.batch);
    if (train(&r, &cfg, &data, &lt, &tokens, &train_s) != 0) goto done;
    t[0] = ex_now();
    if (evaluate(r.tp, &r.m, r.greedy, r.test, cfg.test, &cfg, &r.ev, r.n_show, r.shown,
                 r.shown_len, &g) != 0)
        goto done;
    t[1] = ex_now();
    if (evaluate(r.tp, &r.m, r.beam, r.test, cfg.test, &cfg, &r.ev, r.n_show,
                 r.shown + r.n_show * MAX_TOKENS, r.shown_len + r.n_show, &bm) != 0)
        goto done;
    t[2] = ex_now();
    fprintf(r.log, "%d,%.6f,%.0f,%.2f,%.4f,%.4f\n", cfg.steps, lt.last, tokens / train_s,
            train_s, g.bleu, g.exact);
    int log_bad = ex_close_output(r.log, cfg.log, "caption");
    r.log = NULL;
    if (log_bad) goto done;
    report(&r, &cfg, &g, &bm, t);
    printf("training %.1fs, %.0f tokens/s; log written to %s\n", train_s, tokens / train_s,
           cfg.log);
    if (strcmp(cfg.plot, "none") != 0) {
        int pl = plot(cfg.log, cfg.plot);
        if (pl < 0) goto done;
        if (pl == 0) printf("plot written to %s\n", cfg.plot);
    }
    printf("result: bleu_greedy=%.4f bleu_beam=%.4f exact_greedy=%.4f exact_beam=%.4f beam=%d "
           "first_loss=%.4f last_loss=%.4f seconds=%.1f\n", g.bleu, bm.bleu, g.exact, bm.exact,
           cfg.beam, lt.first, lt.last, train_s);
    rc = 0;
done:
    if (ex_close_output(r.log, cfg.log, "caption") != 0) rc = 1;
    if (ex_finish_stdout("caption") != 0) rc = 1;
    run_free(&r);
    return rc;
}
