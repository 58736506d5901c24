/* Metadata: typed key/value records saved beside the parameters of a model file (the
 * vocabulary, the configuration, the step count...), never trained, clipped or counted.
 * A small array searched linearly: files hold a few dozen records, not thousands. */
#include "graph/meta_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct meta_rec {
    char *key;
    ur_meta_type type;
    int64_t i;
    double f;
    unsigned char *data; /* string (NUL-terminated, len excludes it) or bytes */
    size_t len;
} meta_rec;

struct ur_meta {
    meta_rec *items;
    int n, cap;
};

ur_meta *ur_meta_new(void) { return calloc(1, sizeof(ur_meta)); }

static void rec_free(meta_rec *r)
{
    free(r->key);
    free(r->data);
}

void ur_meta_clear(ur_meta *m)
{
    if (!m) return;
    for (int k = 0; k < m->n; k++) rec_free(&m->items[k]);
    m->n = 0;
}

void ur_meta_free(ur_meta *m)
{
    if (!m) return;
    ur_meta_clear(m);
    free(m->items);
    free(m);
}

static int find(const ur_meta *m, const char *key)
{
    for (int k = 0; m && key && k < m->n; k++)
        if (strcmp(m->items[k].key, key) == 0) return k;
    return -1;
}

int ur_meta_key_ok(const char *key)
{
    size_t n = key ? strlen(key) : 0;
    return n >= 1 && n <= UR_META_KEY_MAX;
}

/* Adds or replaces key with the record r (whose key field is ignored). The key is copied;
 * r's data is taken over on success and freed on failure. */
static int put(ur_meta *m, const char *key, meta_rec r)
{
    if (!m || !ur_meta_key_ok(key)) {
        free(r.data);
        return -1;
    }
    int k = find(m, key);
    if (k >= 0) {
        free(m->items[k].data);
        r.key = m->items[k].key;
        m->items[k] = r;
        return 0;
    }
    if ((unsigned)m->n >= UR_META_COUNT_MAX) {
        free(r.data);
        return -1;
    }
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 8;
        meta_rec *items = realloc(m->items, (size_t)cap * sizeof *items);
        if (!items) {
            free(r.data);
            return -1;
        }
        m->items = items;
        m->cap = cap;
    }
    size_t kl = strlen(key);
    if (!(r.key = malloc(kl + 1))) {
        free(r.data);
        return -1;
    }
    memcpy(r.key, key, kl + 1);
    m->items[m->n++] = r;
    return 0;
}

/* A copy of n bytes plus a NUL (so strings and empty byte strings have a buffer). */
static unsigned char *copy_bytes(const void *p, size_t n)
{
    if (n > UR_META_VALUE_MAX) return NULL;
    unsigned char *d = malloc(n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, p, n);
    d[n] = 0;
    return d;
}

int ur_meta_set_string(ur_meta *m, const char *key, const char *value)
{
    if (!value) return -1;
    size_t n = strlen(value);
    meta_rec r = {NULL, UR_META_STRING, 0, 0.0, copy_bytes(value, n), n};
    return r.data ? put(m, key, r) : -1;
}

int ur_meta_set_int64(ur_meta *m, const char *key, int64_t value)
{
    return put(m, key, (meta_rec){NULL, UR_META_INT64, value, 0.0, NULL, 8});
}

int ur_meta_set_float64(ur_meta *m, const char *key, double value)
{
    if (!isfinite(value)) return -1;
    return put(m, key, (meta_rec){NULL, UR_META_FLOAT64, 0, value, NULL, 8});
}

int ur_meta_set_bytes(ur_meta *m, const char *key, const void *data, size_t len)
{
    if (!data && len) return -1;
    meta_rec r = {NULL, UR_META_BYTES, 0, 0.0, copy_bytes(data, len), len};
    return r.data ? put(m, key, r) : -1;
}

int ur_meta_remove(ur_meta *m, const char *key)
{
    int k = find(m, key);
    if (k < 0) return -1;
    rec_free(&m->items[k]);
    memmove(&m->items[k], &m->items[k + 1], (size_t)(m->n - k - 1) * sizeof *m->items);
    m->n--;
    return 0;
}

ur_meta_type ur_meta_type_of(const ur_meta *m, const char *key)
{
    int k = find(m, key);
    return k < 0 ? UR_META_NONE : m->items[k].type;
}

const char *ur_meta_string(const ur_meta *m, const char *key)
{
    int k = find(m, key);
    return k >= 0 && m->items[k].type == UR_META_STRING ? (const char *)m->items[k].data : NULL;
}

int ur_meta_int64(const ur_meta *m, const char *key, int64_t *out)
{
    int k = find(m, key);
    if (k < 0 || m->items[k].type != UR_META_INT64) return -1;
    if (out) *out = m->items[k].i;
    return 0;
}

int ur_meta_float64(const ur_meta *m, const char *key, double *out)
{
    int k = find(m, key);
    if (k < 0 || m->items[k].type != UR_META_FLOAT64) return -1;
    if (out) *out = m->items[k].f;
    return 0;
}

const void *ur_meta_bytes(const ur_meta *m, const char *key, size_t *len)
{
    int k = find(m, key);
    if (k < 0 || m->items[k].type != UR_META_BYTES) return NULL;
    if (len) *len = m->items[k].len;
    return m->items[k].data;
}

int ur_meta_count(const ur_meta *m) { return m ? m->n : 0; }

const char *ur_meta_key(const ur_meta *m, int k)
{
    return m && k >= 0 && k < m->n ? m->items[k].key : NULL;
}

void ur_meta_swap(ur_meta *a, ur_meta *b)
{
    ur_meta t = *a;
    *a = *b;
    *b = t;
}

/* ---- For the model file code ------------------------------------------------------------ */

int ur_meta_raw(const ur_meta *m, int k, ur_meta_record *out)
{
    if (!m || k < 0 || k >= m->n) return -1;
    const meta_rec *r = &m->items[k];
    out->key = r->key;
    out->type = r->type;
    if (r->type == UR_META_INT64 || r->type == UR_META_FLOAT64) {
        uint64_t u;
        if (r->type == UR_META_INT64) u = (uint64_t)r->i;
        else memcpy(&u, &r->f, 8);
        for (int b = 0; b < 8; b++) out->num[b] = (unsigned char)(u >> (8 * b));
        out->value = out->num;
        out->len = 8;
    } else {
        out->value = r->data;
        out->len = r->len;
    }
    return 0;
}
