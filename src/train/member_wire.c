/* member_wire.c — packing a trained ensemble member (or a failed or
 * stopped one's report) into bytes and back; see member_wire.h. */
#include "train/member_wire.h"

#include <stdlib.h>
#include <string.h>

#include "core/check.h"

static const char MAGIC[8] = {'D', 'G', 'M', 'E', 'M', 'B', '0', '1'};
#define NO_STRING UINT64_MAX

/* ---- writing ------------------------------------------------------------ */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} Buf;

static void put(Buf *b, const void *src, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        uint8_t *q = dg_xmalloc(b->cap);
        if (b->len) memcpy(q, b->p, b->len);
        free(b->p);
        b->p = q;
    }
    if (n) memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u64(Buf *b, uint64_t v) { put(b, &v, sizeof v); }

/* A string as its length and bytes (NULL: the length NO_STRING). */
static void put_str(Buf *b, const char *s) {
    put_u64(b, s ? strlen(s) : NO_STRING);
    if (s) put(b, s, strlen(s));
}

uint8_t *member_pack(const MemberReport *r, const Model *m, size_t *len) {
    Buf b = {0};
    put(&b, MAGIC, sizeof MAGIC);
    put(&b, r, sizeof *r);
    int with_model = r->status == 0 && m;
    put_u64(&b, (uint64_t)with_model);
    if (with_model) {
        put_str(&b, m->spec_name);
        put_str(&b, m->spec_text);
        put_str(&b, m->train_config_json);
        put_str(&b, m->metrics_json);
        put(&b, &m->norm_mean, sizeof m->norm_mean);
        put(&b, &m->norm_std, sizeof m->norm_std);
        put_u64(&b, m->n_param);
        put_u64(&b, m->n_buffer);
        put(&b, m->params, m->n_param * sizeof(float));
        put(&b, m->buffers, m->n_buffer * sizeof(float));
    }
    *len = b.len;
    return b.p;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t len, at;
    int bad;
} Reader;

static void get(Reader *r, void *dst, size_t n) {
    if (r->bad || n > r->len - r->at) {
        r->bad = 1;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, r->p + r->at, n);
    r->at += n;
}

static uint64_t get_u64(Reader *r) {
    uint64_t v;
    get(r, &v, sizeof v);
    return v;
}

/* A string (owned; NULL if it was NULL or the record is short). */
static char *get_str(Reader *r) {
    uint64_t n = get_u64(r);
    if (r->bad || n == NO_STRING) return NULL;
    if (n > r->len - r->at) {
        r->bad = 1;
        return NULL;
    }
    char *s = dg_xmalloc((size_t)n + 1);
    get(r, s, (size_t)n);
    s[n] = '\0';
    return s;
}

/* The model part: spec, JSON, normalisation, weights. */
static int unpack_model(Reader *rd, Model *m) {
    char *name = get_str(rd), *spec = get_str(rd);
    char *cfg = get_str(rd), *metrics = get_str(rd);
    float mean, sd;
    get(rd, &mean, sizeof mean);
    get(rd, &sd, sizeof sd);
    uint64_t np = get_u64(rd), nb = get_u64(rd);
    int rc = -1;
    if (rd->bad || !name || !spec) {
        dg_set_error("member record: truncated");
        goto out;
    }
    if (model_build(m, spec, name) < 0) goto out;
    if (m->n_param != np || m->n_buffer != nb || (np + nb) * sizeof(float) != rd->len - rd->at) {
        dg_set_error("member record: %s has %zu + %zu weights, the record %llu + %llu", name, m->n_param,
                     m->n_buffer, (unsigned long long)np, (unsigned long long)nb);
        model_free(m);
        goto out;
    }
    get(rd, m->params, np * sizeof(float));
    get(rd, m->buffers, nb * sizeof(float));
    snprintf(m->spec_name, sizeof m->spec_name, "%s", name);
    m->norm_mean = mean, m->norm_std = sd;
    m->train_config_json = cfg, m->metrics_json = metrics;
    cfg = metrics = NULL;
    model_params_changed(m);
    rc = 0;
out:
    free(name);
    free(spec);
    free(cfg);
    free(metrics);
    return rc;
}

int member_unpack(const uint8_t *buf, size_t len, MemberReport *r, Model *m) {
    Reader rd = {buf, len, 0, 0};
    char magic[sizeof MAGIC];
    get(&rd, magic, sizeof magic);
    get(&rd, r, sizeof *r);
    uint64_t with_model = get_u64(&rd);
    if (rd.bad || memcmp(magic, MAGIC, sizeof MAGIC) != 0) return dg_set_error("member record: not one (%zu bytes)", len);
    r->error[sizeof r->error - 1] = '\0';
    r->tr.checkpoint[sizeof r->tr.checkpoint - 1] = '\0';
    if (!with_model) return rd.at == len ? 0 : dg_set_error("member record: %zu stray bytes", len - rd.at);
    memset(m, 0, sizeof *m);
    return unpack_model(&rd, m) < 0 ? -1 : 1;
}
