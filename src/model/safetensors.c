/* safetensors.c — the model file: safetensors with digits metadata
 * (checkpoints add their training state on top: src/train/resume.c).
 *
 * Layout: u64 little-endian N, N bytes of JSON header (padded with spaces to
 * a multiple of 8), then the tensors' raw little-endian data: F32, or F16 /
 * BF16 (model_save_dtype rounds to nearest even; loading widens to fp32).
 *   {"__metadata__": {"digits.format": "1", "digits.spec": "...", ...},
 *    "0.weight": {"dtype": "F32", "shape": [6,1,5,5], "data_offsets": [0, 600]}, ...}
 * PyTorch users read it with safetensors.torch.load_file. The reader trusts
 * nothing: the header length, every offset and every shape is checked
 * against the file size and the spec before any copy.
 * Loading refuses NaN and Inf weights, naming the tensor.
 * Leaves out: other dtypes (F64, integer weights, quantised formats);
 * checkpoints and generic tensor files (safetensors_write) stay F32.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/util.h"
#include "core/version.h"
#include "model/model.h"

#define FORMAT_VERSION "1"
#define MAX_MODEL_FILE (2ULL << 30)
#define MAX_HEADER (64u << 20)
#define MAX_TENSORS_PER_LAYER 8

typedef struct {
    char name[64];
    int ndim, shape[4];
    const float *data; /* in the model's blocks */
    float *dest;
    size_t count;
} TensorRef;

/* Enumerate the model's tensors in file order, names prefixed (ensemble
 * members: "m0."; a single model: ""); returns the count. */
static int model_tensors(const Model *m, const char *prefix, TensorRef *out, int max) {
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *l = &m->layers[i];
        const char *names[MAX_TENSORS_PER_LAYER];
        int shapes[MAX_TENSORS_PER_LAYER][4], ndims[MAX_TENSORS_PER_LAYER], is_buf[MAX_TENSORS_PER_LAYER];
        int k = l->kind->tensors(l, names, shapes, ndims, is_buf);
        size_t po = 0, bo = 0;
        for (int t = 0; t < k; t++) {
            DG_ASSERT(n < max);
            TensorRef *r = &out[n++];
            snprintf(r->name, sizeof r->name, "%s%d.%s", prefix, l->index, names[t]);
            r->ndim = ndims[t];
            r->count = 1;
            for (int d = 0; d < ndims[t]; d++) {
                r->shape[d] = shapes[t][d];
                r->count *= (size_t)shapes[t][d];
            }
            if (is_buf[t]) {
                r->dest = l->buffer + bo;
                bo += r->count;
            } else {
                r->dest = l->param + po;
                po += r->count;
            }
            r->data = r->dest;
        }
        DG_ASSERT(po == l->n_param && bo == l->n_buffer);
    }
    return n;
}

static void meta_float(cJSON *meta, const char *key, float v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", v);
    cJSON_AddStringToObject(meta, key, buf);
}

static size_t dtype_size(const char *dtype) {
    if (strcmp(dtype, "F16") == 0 || strcmp(dtype, "BF16") == 0) return 2;
    if (strcmp(dtype, "I8") == 0) return 1;
    return strcmp(dtype, "F32") == 0 || strcmp(dtype, "I32") == 0 ? 4 : 0;
}

/* ==== dtypes: fp32 <-> bf16 / f16, round to nearest even ================== */

const char *dtype_name(DgDtype d) { return d == DG_DTYPE_BF16 ? "BF16" : d == DG_DTYPE_F16 ? "F16" : "F32"; }

int dtype_parse(const char *s, DgDtype *out) {
    if (strcasecmp(s, "f32") == 0 || strcasecmp(s, "fp32") == 0) *out = DG_DTYPE_F32;
    else if (strcasecmp(s, "bf16") == 0) *out = DG_DTYPE_BF16;
    else if (strcasecmp(s, "f16") == 0 || strcasecmp(s, "fp16") == 0) *out = DG_DTYPE_F16;
    else return -1;
    return 0;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t dtype_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1); /* round to nearest, ties to even; may carry into Inf */
    return (uint16_t)(u >> 16);
}

float dtype_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t dtype_f32_to_f16(float f) {
    uint32_t u = f32_bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to Inf */
    if (a < 0x38800000u) {                                    /* below 2^-14: subnormal or zero */
        int shift = 126 - (int)(a >> 23);                     /* f16 value = m >> shift (units of 2^-24) */
        if (shift > 25) return (uint16_t)sign;
        uint32_t m = (a & 0x7fffffu) | 0x800000u, h = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((a >> 23) - 112) << 10 | (a & 0x7fffffu) >> 13, rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* a carry moves into the exponent: right */
    return (uint16_t)(sign | h);
}

float dtype_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f) return bits_f32(sign | 0x7f800000u | m << 13);
    if (e == 0) return sign ? -ldexpf((float)m, -24) : ldexpf((float)m, -24);
    return bits_f32(sign | (e + 112) << 23 | m << 13);
}

/* Tensor data to write: src itself for F32, else a malloc'd converted copy
 * (*owned set, the caller frees it). -1 (with the tensor named) when a
 * finite weight does not fit the dtype (|x| >= 65520 in F16). */
static int encode_tensor(const char *path, const char *name, const float *src, size_t count, DgDtype d,
                         const void **out, void **owned) {
    *owned = NULL;
    *out = src;
    if (d == DG_DTYPE_F32) return 0;
    uint16_t *h = dg_xmalloc(count ? count * 2 : 2);
    for (size_t i = 0; i < count; i++) {
        h[i] = d == DG_DTYPE_BF16 ? dtype_f32_to_bf16(src[i]) : dtype_f32_to_f16(src[i]);
        if ((h[i] & (d == DG_DTYPE_BF16 ? 0x7f80u : 0x7c00u)) == (d == DG_DTYPE_BF16 ? 0x7f80u : 0x7c00u) &&
            isfinite(src[i])) {
            free(h);
            return dg_set_error("%s: tensor '%s' holds %g, too large for %s", path, name, (double)src[i],
                                dtype_name(d));
        }
    }
    *out = *owned = h;
    return 0;
}

/* The atomic write every writer shares: u64 header length, the JSON header
 * (consumed) padded with spaces to a multiple of 8, then n raw chunks. */
static int write_file(const char *path, char *json, const void *const *data, const size_t *bytes, int n) {
    size_t hlen = strlen(json), padded = (hlen + 7) / 8 * 8;
    AtomicFile af;
    if (atomic_file_open(&af, path) < 0) {
        free(json);
        return -1;
    }
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    errno = 0;
    int ok = fwrite(lenbuf, 1, 8, af.f) == 8 && fwrite(json, 1, hlen, af.f) == hlen;
    for (size_t i = hlen; ok && i < padded; i++) ok = fputc(' ', af.f) != EOF;
    for (int i = 0; ok && i < n; i++) ok = bytes[i] == 0 || fwrite(data[i], 1, bytes[i], af.f) == bytes[i];
    int saved = errno;
    free(json);
    if (!ok) {
        atomic_file_abort(&af);
        return dg_set_error("%s: write failed: %s; previous file left intact", path,
                            saved ? strerror(saved) : "disk full?");
    }
    return atomic_file_commit(&af);
}

/* Write the header {"__metadata__": meta (consumed), tensors t[0..nt) in
 * `dtype`, then extra[0..n_extra) as they are} and the data, atomically. */
static int save_tensors(const char *path, cJSON *meta, const TensorRef *t, int nt, const SafeTensor *extra,
                        int n_extra, DgDtype dtype) {
    int n = nt + n_extra;
    const void **data = dg_xcalloc((size_t)n + 1, sizeof *data);
    void **owned = dg_xcalloc((size_t)n + 1, sizeof *owned);
    size_t *bytes = dg_xcalloc((size_t)n + 1, sizeof *bytes);
    int rc = 0;
    for (int i = 0; i < nt && rc == 0; i++) {
        rc = encode_tensor(path, t[i].name, t[i].data, t[i].count, dtype, &data[i], &owned[i]);
        bytes[i] = t[i].count * dtype_size(dtype_name(dtype));
    }
    for (int i = 0; i < n_extra; i++) {
        DG_ASSERT(dtype_size(extra[i].dtype) > 0);
        data[nt + i] = extra[i].data, bytes[nt + i] = extra[i].count * dtype_size(extra[i].dtype);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "__metadata__", meta);
    size_t off = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, i < nt ? t[i].name : extra[i - nt].name);
        cJSON_AddStringToObject(e, "dtype", i < nt ? dtype_name(dtype) : extra[i - nt].dtype);
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        if (i < nt)
            for (int d = 0; d < t[i].ndim; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber(t[i].shape[d]));
        else
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)extra[i - nt].count));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        off += bytes[i];
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
    }
    char *json = rc == 0 ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (rc == 0) {
        DG_ASSERT(json);
        rc = write_file(path, json, data, bytes, n);
    }
    for (int i = 0; i < n; i++) free(owned[i]);
    free(owned);
    free(data);
    free(bytes);
    return rc;
}

/* One network's file: its metadata (+ meta_kv pairs), its tensors in
 * `dtype`, then the extra tensors. */
static int save_model(const Model *m, const char *path, const char *const *meta_kv, const SafeTensor *extra,
                      int n_extra, DgDtype dtype) {
    int cap = m->n_layers * MAX_TENSORS_PER_LAYER + 1;
    TensorRef *t = dg_xcalloc((size_t)cap, sizeof *t);
    int nt = model_tensors(m, "", t, cap);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "digits.format", FORMAT_VERSION);
    cJSON_AddStringToObject(meta, "digits.version", DG_VERSION);
    cJSON_AddStringToObject(meta, "digits.dtype", dtype_name(dtype));
    cJSON_AddStringToObject(meta, "digits.name", m->spec_name);
    cJSON_AddStringToObject(meta, "digits.spec", m->spec_text);
    meta_float(meta, "digits.norm_mean", m->norm_mean);
    meta_float(meta, "digits.norm_std", m->norm_std);
    if (m->train_config_json) cJSON_AddStringToObject(meta, "digits.train_config", m->train_config_json);
    if (m->metrics_json) cJSON_AddStringToObject(meta, "digits.metrics", m->metrics_json);
    for (int i = 0; meta_kv && meta_kv[i]; i += 2) cJSON_AddStringToObject(meta, meta_kv[i], meta_kv[i + 1]);
    int rc = save_tensors(path, meta, t, nt, extra, n_extra, dtype);
    free(t);
    return rc;
}

int model_save(const Model *m, const char *path) { return model_save_extra(m, path, NULL, NULL, 0); }

int model_save_dtype(const Model *m, const char *path, DgDtype dtype) {
    return save_model(m, path, NULL, NULL, 0, dtype);
}

int model_save_extra(const Model *m, const char *path, const char *const *meta_kv,
                     const SafeTensor *extra, int n_extra) {
    return save_model(m, path, meta_kv, extra, n_extra, DG_DTYPE_F32);
}

int models_save(const char *path, const Model *const *models, const char *const *prefixes, int n,
                const char *metadata_json) {
    return models_save_dtype(path, models, prefixes, n, metadata_json, DG_DTYPE_F32);
}

int models_save_dtype(const char *path, const Model *const *models, const char *const *prefixes, int n,
                      const char *metadata_json, DgDtype dtype) {
    cJSON *meta = cJSON_Parse(metadata_json);
    DG_ASSERT(cJSON_IsObject(meta));
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "digits.format", FORMAT_VERSION);
    if (!cJSON_GetObjectItemCaseSensitive(meta, "digits.version"))
        cJSON_AddStringToObject(meta, "digits.version", DG_VERSION);
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "digits.dtype");
    cJSON_AddStringToObject(meta, "digits.dtype", dtype_name(dtype));
    int cap = 1;
    for (int k = 0; k < n; k++) cap += models[k]->n_layers * MAX_TENSORS_PER_LAYER;
    TensorRef *t = dg_xcalloc((size_t)cap, sizeof *t);
    int nt = 0;
    for (int k = 0; k < n; k++) nt += model_tensors(models[k], prefixes[k], t + nt, cap - nt);
    int rc = save_tensors(path, meta, t, nt, NULL, 0, dtype);
    free(t);
    return rc;
}

/* ==== loading ============================================================= */

static int is_train_state(const char *name);

struct SafeTensors {
    char *path;
    char *data;
    size_t len;
    cJSON *header;
    size_t data_start;
};

void safetensors_close(SafeTensors *s) {
    if (!s) return;
    free(s->path);
    free(s->data);
    cJSON_Delete(s->header);
    free(s);
}

SafeTensors *safetensors_open(const char *path) {
    SafeTensors *s = dg_xcalloc(1, sizeof *s);
    s->path = strdup(path);
    DG_ASSERT(s->path);
    if (read_whole_file(path, MAX_MODEL_FILE, &s->data, &s->len) < 0) {
        safetensors_close(s);
        return NULL;
    }
    size_t len = s->len;
    if (len < 8) {
        dg_set_error("%s: not a model file (expected safetensors): %zu bytes, too short for a header", path, len);
        safetensors_close(s);
        return NULL;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)(uint8_t)s->data[i] << (8 * i);
    if (hlen > MAX_HEADER || hlen > len - 8) {
        if (len == 8 || s->data[8] != '{') /* a safetensors header is a JSON object */
            dg_set_error("%s: not a model file (expected safetensors)", path);
        else
            dg_set_error("%s: truncated model file: header length %llu, file has %zu bytes", path,
                         (unsigned long long)hlen, len);
        safetensors_close(s);
        return NULL;
    }
    s->header = cJSON_ParseWithLength(s->data + 8, (size_t)hlen);
    if (!s->header || !cJSON_IsObject(s->header)) {
        dg_set_error("%s: corrupted model file: header is not valid JSON", path);
        safetensors_close(s);
        return NULL;
    }
    s->data_start = 8 + (size_t)hlen;
    return s;
}

const char *safetensors_meta(const SafeTensors *s, const char *key) {
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(s->header, "__metadata__");
    cJSON *v = cJSON_IsObject(meta) ? cJSON_GetObjectItemCaseSensitive(meta, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

const char *safetensors_path(const SafeTensors *s) { return s->path; }

int safetensors_dtypes(const SafeTensors *s, char *buf, size_t len) {
    int n = 0;
    size_t o = 0;
    if (len) buf[0] = '\0';
    for (cJSON *e = s->header->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0 || is_train_state(e->string)) continue;
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        char shown[16];
        const char *d = cJSON_IsString(dt) ? dg_printable(dt->valuestring, shown, sizeof shown) : "?";
        char key[20];
        snprintf(key, sizeof key, "+%s+", d);
        char have[512];
        snprintf(have, sizeof have, "+%s+", buf);
        if (strstr(have, key)) continue;
        if (o < len) o += (size_t)snprintf(buf + o, len - o, "%s%s", n ? "+" : "", d);
        n++;
    }
    return n;
}

/* A JSON number that is a whole number in 0..max, or -1. */
static double json_whole(const cJSON *v, double max) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    return d >= 0 && d <= max && d == floor(d) ? d : -1;
}

/* The byte range of tensor entry e inside the data section; -1 if the
 * offsets are malformed or outside the file. */
static int entry_range(const SafeTensors *s, const cJSON *e, size_t *begin, size_t *bytes) {
    size_t data_len = s->len - s->data_start;
    cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2) return -1;
    double o0 = json_whole(cJSON_GetArrayItem(offs, 0), (double)data_len);
    double o1 = json_whole(cJSON_GetArrayItem(offs, 1), (double)data_len);
    if (o0 < 0 || o1 < o0) return -1;
    *begin = (size_t)o0;
    *bytes = (size_t)o1 - (size_t)o0;
    return 0;
}

static void format_shape(char *buf, size_t len, const int *shape, int ndim) {
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < ndim && o < len; d++) o += (size_t)snprintf(buf + o, len - o, d ? ",%d" : "%d", shape[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

/* Tensor entry e (named `name`) as count fp32 values in dst: dtype F32, F16
 * or BF16 (widened exactly), offsets inside the file and of the right size,
 * every value finite. -1 with "path: tensor NAME: problem" otherwise. */
static int read_tensor_f32(const SafeTensors *s, const cJSON *e, const char *name, size_t count, float *dst) {
    cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const char *dt = cJSON_IsString(dtype) ? dtype->valuestring : "";
    int f32 = strcmp(dt, "F32") == 0, f16 = strcmp(dt, "F16") == 0, bf16 = strcmp(dt, "BF16") == 0;
    if (!f32 && !f16 && !bf16) {
        char shown[24];
        return dg_set_error("%s: tensor %s: dtype %s, expected F32, F16 or BF16", s->path, name,
                            cJSON_IsString(dtype) ? dg_printable(dt, shown, sizeof shown) : "(missing)");
    }
    size_t begin, bytes, es = f32 ? 4 : 2;
    if (entry_range(s, e, &begin, &bytes) < 0 || bytes != count * es)
        return dg_set_error("%s: tensor %s: data offsets are invalid or outside the file "
                            "(truncated or corrupted model file)", s->path, name);
    const uint8_t *src = (const uint8_t *)s->data + s->data_start + begin;
    if (f32 && bytes) memcpy(dst, src, bytes);
    for (size_t i = 0; !f32 && i < count; i++) {
        uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
        dst[i] = f16 ? dtype_f16_to_f32(h) : dtype_bf16_to_f32(h);
    }
    for (size_t i = 0; i < count; i++)
        if (!isfinite(dst[i]))
            return dg_set_error("%s: tensor '%s' holds %s", s->path, name, isnan(dst[i]) ? "NaN" : "Inf");
    return 0;
}

/* Tensors named "train.*" hold a checkpoint's training state (resume.c);
 * model loading skips them, so a checkpoint is also a usable model file. */
static int is_train_state(const char *name) { return strncmp(name, "train.", 6) == 0; }

/* Copy every tensor the models expect (model k's names prefixed with
 * prefixes[k]) from s, checking name, dtype, shape and offsets; then reject
 * tensors no model knows. */
static int st_copy_weights_many(Model *const *ms, const char *const *prefixes, int n_models, const SafeTensors *s) {
    const char *path = s->path;
    int cap = 1;
    for (int k = 0; k < n_models; k++) cap += ms[k]->n_layers * MAX_TENSORS_PER_LAYER;
    TensorRef *t = dg_xcalloc((size_t)cap, sizeof *t);
    int nt = 0, rc = -1;
    for (int k = 0; k < n_models; k++) nt += model_tensors(ms[k], prefixes[k], t + nt, cap - nt);
    for (int i = 0; i < nt; i++) {
        char want[64], got[64];
        format_shape(want, sizeof want, t[i].shape, t[i].ndim);
        cJSON *e = cJSON_GetObjectItemCaseSensitive(s->header, t[i].name);
        if (!cJSON_IsObject(e)) {
            dg_set_error("%s: missing tensor %s (shape %s) expected by the spec", path, t[i].name, want);
            goto out;
        }
        cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        int ndim = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
        int dims[4] = {0};
        int shape_ok = ndim == t[i].ndim;
        for (int d = 0; d < ndim && d < 4; d++) {
            dims[d] = (int)json_whole(cJSON_GetArrayItem(shape, d), 1e9);
            if (dims[d] != t[i].shape[d]) shape_ok = 0;
        }
        if (!shape_ok) {
            if (ndim < 0 || ndim > 4)
                snprintf(got, sizeof got, "(invalid)");
            else
                format_shape(got, sizeof got, dims, ndim);
            dg_set_error("%s: tensor %s: shape %s, expected %s", path, t[i].name, got, want);
            goto out;
        }
        if (read_tensor_f32(s, e, t[i].name, t[i].count, t[i].dest) < 0) goto out;
    }
    for (cJSON *e = s->header->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0 || is_train_state(e->string)) continue;
        if (strstr(e->string, "num_batches_tracked")) continue; /* PyTorch BN counter */
        int known = 0;
        for (int i = 0; i < nt && !known; i++) known = strcmp(t[i].name, e->string) == 0;
        if (!known) {
            char shown[64];
            dg_set_error("%s: unexpected tensor %s (not in the spec)", path,
                         dg_printable(e->string, shown, sizeof shown));
            goto out;
        }
    }
    rc = 0;
out:
    free(t);
    return rc;
}

static int st_copy_weights(Model *m, const SafeTensors *s) {
    const char *prefix = "";
    return st_copy_weights_many(&m, &prefix, 1, s);
}

int model_load_weights(Model *m, const char *path) {
    SafeTensors *s = safetensors_open(path);
    if (!s) return -1;
    int rc = st_copy_weights(m, s);
    safetensors_close(s);
    return rc;
}

int models_load_weights(Model *const *models, const char *const *prefixes, int n, const char *path) {
    SafeTensors *s = safetensors_open(path);
    if (!s) return -1;
    int rc = st_copy_weights_many(models, prefixes, n, s);
    safetensors_close(s);
    return rc;
}

static int parse_meta_float(const SafeTensors *s, const char *key, float *out) {
    const char *v = safetensors_meta(s, key);
    if (!v) return 0; /* optional: defaults stay */
    char *end;
    double d = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || !(d > -1e6 && d < 1e6)) {
        char shown[32];
        return dg_set_error("%s: metadata %s='%s' is not a number", s->path, key,
                            dg_printable(v, shown, sizeof shown));
    }
    *out = (float)d;
    return 0;
}

int model_load_from(Model *m, const SafeTensors *s) {
    const char *path = s->path;
    memset(m, 0, sizeof *m);
    const char *version = safetensors_meta(s, "digits.format");
    const char *spec = safetensors_meta(s, "digits.spec");
    if (!version || !spec)
        return dg_set_error("%s: not a digits model file (no digits.format/digits.spec metadata)", path);
    if (strcmp(version, FORMAT_VERSION) != 0) {
        char shown[16];
        return dg_set_error("%s: model file format %s, this digits reads format %s", path,
                            dg_printable(version, shown, sizeof shown), FORMAT_VERSION);
    }
    char origin[4200];
    snprintf(origin, sizeof origin, "%s (embedded spec)", path);
    /* the weights must fit in the file: checked before the spec allocates
     * (a file that says it is 16-bit holds 2 bytes per weight) */
    const char *dt = safetensors_meta(s, "digits.dtype");
    size_t per = dt && (strcmp(dt, "BF16") == 0 || strcmp(dt, "F16") == 0) ? 2 : sizeof(float);
    if (model_build_limited(m, spec, origin, (s->len - s->data_start) / per, path) < 0)
        return -1;
    const char *name = safetensors_meta(s, "digits.name");
    if (name) snprintf(m->spec_name, sizeof m->spec_name, "%s", name);
    float std = 1.0f;
    if (parse_meta_float(s, "digits.norm_mean", &m->norm_mean) < 0 ||
        parse_meta_float(s, "digits.norm_std", &std) < 0 || st_copy_weights(m, s) < 0) {
        model_free(m);
        return -1;
    }
    if (!(std > 1e-6f)) {
        model_free(m);
        return dg_set_error("%s: metadata digits.norm_std must be positive", path);
    }
    m->norm_std = std;
    const char *cfg = safetensors_meta(s, "digits.train_config");
    const char *metrics = safetensors_meta(s, "digits.metrics");
    if (cfg) m->train_config_json = strdup(cfg);
    if (metrics) m->metrics_json = strdup(metrics);
    return 0;
}

int model_load(Model *m, const char *path) {
    memset(m, 0, sizeof *m);
    SafeTensors *s = safetensors_open(path);
    if (!s) return -1;
    int rc = model_load_from(m, s);
    safetensors_close(s);
    return rc;
}

int safetensors_get(const SafeTensors *s, const char *name, const char *dtype, size_t count, void *dst) {
    cJSON *e = cJSON_GetObjectItemCaseSensitive(s->header, name);
    if (!cJSON_IsObject(e)) return dg_set_error("%s: no tensor %s", s->path, name);
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt) || strcmp(dt->valuestring, dtype) != 0) {
        char shown[24];
        return dg_set_error("%s: tensor %s: dtype %s, expected %s", s->path, name,
                            cJSON_IsString(dt) ? dg_printable(dt->valuestring, shown, sizeof shown)
                                               : "(missing)", dtype);
    }
    size_t begin, bytes, es = dtype_size(dtype);
    DG_ASSERT(es > 0);
    if (entry_range(s, e, &begin, &bytes) < 0 || bytes != count * es)
        return dg_set_error("%s: tensor %s: %zu elements expected; offsets invalid, outside the "
                            "file, or of another size (truncated or corrupted file)", s->path,
                            name, count);
    if (bytes) memcpy(dst, s->data + s->data_start + begin, bytes);
    return 0;
}

int safetensors_read(const char *path, const char *name, float **data, size_t *count) {
    SafeTensors *s = safetensors_open(path);
    if (!s) return -1;
    cJSON *e = cJSON_GetObjectItemCaseSensitive(s->header, name);
    cJSON *dtype = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "dtype") : NULL;
    size_t begin = 0, bytes = 0;
    if (!cJSON_IsObject(e)) {
        safetensors_close(s);
        return dg_set_error("%s: no tensor %s", path, name);
    }
    size_t es = cJSON_IsString(dtype) ? dtype_size(dtype->valuestring) : 0;
    if (es == 0 || strcmp(dtype->valuestring, "I32") == 0 || strcmp(dtype->valuestring, "I8") == 0 ||
        entry_range(s, e, &begin, &bytes) < 0 ||
        bytes % es) {
        safetensors_close(s);
        return dg_set_error("%s: tensor %s: not F32/F16/BF16 or bad offsets", path, name);
    }
    *count = bytes / es;
    *data = dg_xmalloc(bytes ? *count * sizeof(float) : 4);
    int rc = read_tensor_f32(s, e, name, *count, *data);
    if (rc < 0) {
        free(*data);
        *data = NULL;
    }
    safetensors_close(s);
    return rc;
}

char *safetensors_metadata(const char *path) {
    SafeTensors *s = safetensors_open(path);
    if (!s) return NULL;
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(s->header, "__metadata__");
    char *out = cJSON_IsObject(meta) ? cJSON_PrintUnformatted(meta) : strdup("{}");
    safetensors_close(s);
    if (!out) dg_set_error("%s: out of memory reading metadata", path);
    return out;
}

/* ==== generic tensors ===================================================== */

int safetensors_write(const char *path, const char *meta_json, const StTensor *t, int n) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = meta_json ? cJSON_Parse(meta_json) : cJSON_CreateObject();
    DG_ASSERT(cJSON_IsObject(meta));
    if (!cJSON_GetObjectItemCaseSensitive(meta, "digits.version"))
        cJSON_AddStringToObject(meta, "digits.version", DG_VERSION);
    cJSON_AddItemToObject(root, "__metadata__", meta);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        size_t count = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            cJSON_AddItemToArray(shape, cJSON_CreateNumber(t[i].shape[d]));
            count *= (size_t)t[i].shape[d];
        }
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        off += count * sizeof(float);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    DG_ASSERT(json);
    const void **data = dg_xcalloc((size_t)n + 1, sizeof *data);
    size_t *bytes = dg_xcalloc((size_t)n + 1, sizeof *bytes);
    for (int i = 0; i < n; i++) {
        size_t count = 1;
        for (int d = 0; d < t[i].ndim; d++) count *= (size_t)t[i].shape[d];
        data[i] = t[i].data, bytes[i] = count * sizeof(float);
    }
    int rc = write_file(path, json, data, bytes, n);
    free(data);
    free(bytes);
    return rc;
}

int safetensors_write_raw(const char *path, const char *meta_json, const SafeTensor *t, int n) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = meta_json ? cJSON_Parse(meta_json) : cJSON_CreateObject();
    DG_ASSERT(cJSON_IsObject(meta));
    if (!cJSON_GetObjectItemCaseSensitive(meta, "digits.version"))
        cJSON_AddStringToObject(meta, "digits.version", DG_VERSION);
    cJSON_AddItemToObject(root, "__metadata__", meta);
    const void **data = dg_xcalloc((size_t)n + 1, sizeof *data);
    size_t *bytes = dg_xcalloc((size_t)n + 1, sizeof *bytes);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t es = dtype_size(t[i].dtype);
        DG_ASSERT(es > 0);
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        cJSON_AddStringToObject(e, "dtype", t[i].dtype);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(e, "shape"), cJSON_CreateNumber((double)t[i].count));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        data[i] = t[i].data, bytes[i] = t[i].count * es;
        off += bytes[i];
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    DG_ASSERT(json);
    int rc = write_file(path, json, data, bytes, n);
    free(data);
    free(bytes);
    return rc;
}

int safetensors_get_f32(const SafeTensors *f, const char *name, int ndim, const int *shape, float **data) {
    *data = NULL;
    const char *path = f->path;
    char want[64], got[64];
    format_shape(want, sizeof want, shape, ndim);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(f->header, name);
    if (!cJSON_IsObject(e)) return dg_set_error("%s: missing tensor %s (shape %s)", path, name, want);
    cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    int nd = cJSON_IsArray(sh) ? cJSON_GetArraySize(sh) : -1;
    int dims[4] = {0}, ok = nd == ndim;
    size_t count = 1;
    for (int d = 0; d < ndim; d++) count *= (size_t)shape[d];
    for (int d = 0; d < nd && d < 4; d++) {
        cJSON *v = cJSON_GetArrayItem(sh, d);
        /* a non-integer or absurd dimension reads as -1: never equal to a wanted size */
        dims[d] = cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 2e9 &&
                          v->valuedouble == (double)(int)v->valuedouble
                      ? (int)v->valuedouble
                      : -1;
        if (d < ndim && dims[d] != shape[d]) ok = 0;
    }
    if (!ok) {
        if (nd < 0 || nd > 4)
            snprintf(got, sizeof got, "(invalid)");
        else
            format_shape(got, sizeof got, dims, nd);
        return dg_set_error("%s: tensor %s: shape %s, expected %s", path, name, got, want);
    }
    *data = dg_xmalloc(count ? count * sizeof(float) : sizeof(float));
    if (read_tensor_f32(f, e, name, count, *data) < 0) {
        free(*data);
        *data = NULL;
        return -1;
    }
    return 0;
}

int safetensors_only(const SafeTensors *f, const char *const *names, int n) {
    for (cJSON *e = f->header->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        int known = 0;
        for (int i = 0; i < n && !known; i++) known = strcmp(names[i], e->string) == 0;
        if (!known) {
            char shown[64];
            return dg_set_error("%s: unexpected tensor %s", f->path, dg_printable(e->string, shown, sizeof shown));
        }
    }
    return 0;
}
