/* routes.c — the endpoints of `digits serve`: the embedded page, the model's
 * metadata, health, and prediction from an image or a JSON pixel array.
 *
 * Prediction: decode (data/image.c: PNG, JPEG, BMP, PGM, with the pixel cap
 * checked from the header) -> MNIST-style preprocessing (data/preprocess.c)
 * -> the model, through the public API (dg_predict_batch) -> JSON: the digit (the largest,
 * with a "warning" when the image seems to hold several), or with
 * ?multi=1 / "multi": true every digit left to right and the "number".
 * Uploads are decoded in colour and upright (EXIF). Status codes: 400 bad
 * request (corrupt image, bad JSON), 413 too large (image dimensions; body
 * size is http.c's), 415 not an image we read, 422 nothing to recognise
 * (blank image).
 *
 * Threads: one dg_model, loaded once and shared by every connection thread:
 * the API gives each concurrent prediction a workspace of its own (see
 * "Thread safety" in include/digits.h), so requests never wait on each
 * other, and decoding and preprocessing run outside the model. The forward
 * pass runs on the request's own thread with one thread
 * (dg_model_set_threads 1, OpenMP limited to 1 there): parallelism comes
 * from serving requests side by side, not from splitting one 28x28 image.
 *
 * Left out on purpose: batching concurrent requests into one forward pass
 * (throughput at the cost of latency and complexity). CORS headers, for
 * pages on other origins, are http.c's (off unless --cors).
 */
#include "serve/routes.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/util.h"
#include "digits.h"
#include "digits_internal.h"

/* web/index.html, web/app.js, web/style.css: generated into
 * $(BUILD)/gen/web_assets.c by the Makefile (xxd -i). */
extern const unsigned char web_index_html[], web_app_js[], web_style_css[];
extern const unsigned int web_index_html_len, web_app_js_len, web_style_css_len;

/* ---- buffers --------------------------------------------------------------------- */

int sbuf_append(SBuf *b, const void *p, size_t n) {
    if (n > SIZE_MAX / 2 - b->len) return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return -1;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int sbuf_printf(SBuf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    if ((size_t)n < sizeof small) return sbuf_append(b, small, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return -1;
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = sbuf_append(b, big, (size_t)n);
    free(big);
    return rc;
}

void sbuf_free(SBuf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* A JSON string literal: quotes, backslashes and control bytes escaped. */
static int sbuf_json_string(SBuf *b, const char *s) {
    int rc = sbuf_append(b, "\"", 1);
    for (; *s && rc == 0; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') rc = sbuf_printf(b, "\\%c", ch);
        else if (ch < 0x20) rc = sbuf_printf(b, "\\u%04x", ch);
        else rc = sbuf_append(b, s, 1);
    }
    return rc ? rc : sbuf_append(b, "\"", 1);
}

/* ---- replies ----------------------------------------------------------------------- */

static void reply_json(Reply *rep, int status, SBuf *b) {
    rep->status = status;
    rep->content_type = "application/json";
    rep->body = b->data;
    rep->len = b->len;
    rep->is_static = 0;
    memset(b, 0, sizeof *b);  /* ownership moves to the reply */
}

static void reply_static(Reply *rep, int status, const char *type, const void *body, size_t len) {
    rep->status = status;
    rep->content_type = type;
    rep->body = (char *)body;
    rep->len = len;
    rep->is_static = 1;
}

void reply_error(Reply *rep, int status, const char *fmt, ...) {
    static const char oom[] = "{\"error\":\"out of memory\"}";
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    SBuf b = {0};
    if (sbuf_append(&b, "{\"error\":", 9) || sbuf_json_string(&b, msg) || sbuf_append(&b, "}", 1)) {
        sbuf_free(&b);
        reply_static(rep, 500, "application/json", oom, sizeof oom - 1);
        return;
    }
    reply_json(rep, status, &b);
}

/* ---- the model ----------------------------------------------------------------------- */

struct Routes {
    dg_model *model;  /* shared by the connection threads (see top) */
    char *model_json, *health_json;  /* built once: GET /api/model, GET /healthz */
    size_t model_json_len, health_json_len;
};

/* ---- GET /api/model ----------------------------------------------------------------- */

/* A metadata value that is itself JSON text (train_config, metrics) as an
 * object; otherwise the string as it is. */
static cJSON *meta_value(const cJSON *meta, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    if (!cJSON_IsString(v)) return cJSON_CreateNull();
    cJSON *parsed = cJSON_ParseWithOpts(v->valuestring, NULL, 1);  /* whole string, or not JSON */
    return parsed ? parsed : cJSON_CreateString(v->valuestring);
}

/* The networks in the model: 1, an ensemble's members, 0 for the SVM. */
static int network_count(const dg_model *m) {
    const char *kind = dg_model_kind(m);
    if (strcmp(kind, "svm") == 0) return 0;
    if (strcmp(kind, "ensemble") != 0) return 1;
    char *info = dg_model_info_json(m);
    cJSON *o = info ? cJSON_Parse(info) : NULL;
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "members"));
    cJSON_Delete(o);
    dg_free(info);
    return n;
}

static char *model_info_json(const dg_model *m) {
    cJSON *o = cJSON_CreateObject(), *meta = cJSON_Parse(dg_model_metadata(m));
    cJSON_AddStringToObject(o, "name", dg_model_name(m));
    cJSON_AddStringToObject(o, "kind", dg_model_kind(m));
    int shape[2];
    dg_model_input_size(m, &shape[0], &shape[1]);
    cJSON_AddItemToObject(o, "input", cJSON_CreateIntArray(shape, 2));
    /* the networks' weights (an ensemble: all members); 0 for an SVM */
    cJSON_AddNumberToObject(o, "parameters", (double)dg_model_param_count(m));
    cJSON_AddNumberToObject(o, "models", network_count(m));
    cJSON_AddItemToObject(o, "architecture", meta_value(meta, "digits.spec"));
    cJSON_AddItemToObject(o, "train_config", meta_value(meta, "digits.train_config"));
    cJSON_AddItemToObject(o, "metrics", meta_value(meta, "digits.metrics"));
    cJSON_AddItemToObject(o, "metadata", meta ? meta : cJSON_CreateObject());
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* ---- lifetime ------------------------------------------------------------------------ */

Routes *routes_new(const char *model_path, int workers) {
    (void)workers; /* the API grows its workspaces to the concurrent requests */
    Routes *r = calloc(1, sizeof *r);
    if (!r) {
        dg_set_error("out of memory");
        return NULL;
    }
    /* one image per request, one thread per forward pass (see top) */
    if (dg_model_load(&r->model, model_path) != DG_OK || dg_model_set_batch(r->model, 1) != DG_OK ||
        dg_model_set_threads(r->model, 1) != DG_OK)
        goto fail;
    int w, h;
    dg_model_input_size(r->model, &w, &h);
    if (w != PREP_SIDE || h != PREP_SIDE) {
        dg_set_error("%s: the model takes %dx%d images, the server prepares %dx%d", model_path, w, h, PREP_SIDE,
                     PREP_SIDE);
        goto fail;
    }
    r->model_json = model_info_json(r->model);
    SBuf hb = {0};
    if (sbuf_append(&hb, "{\"status\":\"ok\",\"model\":", 23) || sbuf_json_string(&hb, dg_model_name(r->model)) ||
        sbuf_append(&hb, "}", 1) || !r->model_json) {
        sbuf_free(&hb);
        dg_set_error("out of memory");
        goto fail;
    }
    r->health_json = hb.data;
    r->health_json_len = hb.len;
    r->model_json_len = strlen(r->model_json);
    return r;
fail:
    routes_free(r);
    return NULL;
}

void routes_free(Routes *r) {
    if (!r) return;
    dg_model_free(r->model);
    free(r->model_json);  /* cJSON's default allocator is malloc */
    free(r->health_json);
    free(r);
}

/* ---- routing ------------------------------------------------------------------------- */

int routes_match(const char *method, const char *path, Route *route, const char **allow) {
    static const struct {
        const char *path;
        Route route;
    } table[] = {{"/", ROUTE_PAGE},          {"/index.html", ROUTE_PAGE},  {"/app.js", ROUTE_JS},
                 {"/style.css", ROUTE_CSS},  {"/healthz", ROUTE_HEALTH},   {"/api/model", ROUTE_MODEL},
                 {"/api/predict", ROUTE_PREDICT}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (strcmp(path, table[i].path) != 0) continue;
        *route = table[i].route;
        int post = table[i].route == ROUTE_PREDICT;
        *allow = post ? "POST" : "GET, HEAD";
        if (post ? strcmp(method, "POST") == 0 : strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
            return 0;
        return 405;
    }
    return 404;
}

void routes_refuse(int status, const char *method, const char *path, const char *allow, Reply *rep) {
    memset(rep, 0, sizeof *rep);
    if (status == 405) {
        reply_error(rep, 405, "%s is not allowed on %s (allowed: %s)", method, path, allow);
        rep->allow = allow;
    } else {
        reply_error(rep, 404, "no such path: %s (try /, /api/predict, /api/model, /healthz)", path);
    }
}

/* ---- POST /api/predict ------------------------------------------------------------------ */

static int is_json(const char *type) {
    if (!type) return 0;
    size_t n = strcspn(type, ";");  /* "application/json; charset=utf-8" */
    while (n && (type[n - 1] == ' ' || type[n - 1] == '\t')) n--;
    return (n == 16 && strncasecmp(type, "application/json", 16) == 0) ||
           (n > 5 && strncasecmp(type + n - 5, "+json", 5) == 0);
}

int routes_query_flag(const char *value) {
    return value && (strcmp(value, "1") == 0 || strcasecmp(value, "true") == 0 || strcasecmp(value, "yes") == 0);
}

/* What a request's image became: up to PREP_MAX_DIGITS inputs, left to
 * right (one unless multi), and what the preprocessing saw. */
typedef struct {
    uint8_t input[PREP_MAX_DIGITS][PREP_SIDE * PREP_SIDE];
    int n;       /* inputs filled */
    int multi;   /* every digit was asked for */
    PrepInfo info;
} Prepared;

/* {"pixels": [784 numbers 0..255], "preprocess": true|false, "multi":
 * true|false} -> p. preprocess (default true) treats the pixels as any
 * 28x28 drawing; false takes them as they are (already MNIST-style). multi
 * (default: the URL's ?multi=) reads every digit. Returns 0, or -1 with the
 * reply filled (400/422). */
static int pixels_from_json(const Request *req, Prepared *p, Reply *rep) {
    const int npx = PREP_SIDE * PREP_SIDE;
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts((const char *)req->body, req->len, &end, 0);
    if (!doc) {
        size_t at = end && end >= (const char *)req->body ? (size_t)(end - (const char *)req->body) : 0;
        reply_error(rep, 400, "invalid JSON near byte %zu", at);
        return -1;
    }
    int rc = -1;
    const cJSON *pixels = cJSON_GetObjectItemCaseSensitive(doc, "pixels");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(doc, "preprocess");
    const cJSON *multi = cJSON_GetObjectItemCaseSensitive(doc, "multi");
    if (!cJSON_IsObject(doc) || !cJSON_IsArray(pixels)) {
        reply_error(rep, 400, "expected a JSON object {\"pixels\": [%d numbers 0..255]}", npx);
        goto done;
    }
    if (pre && !cJSON_IsBool(pre)) {
        reply_error(rep, 400, "\"preprocess\" must be true or false");
        goto done;
    }
    if (multi && !cJSON_IsBool(multi)) {
        reply_error(rep, 400, "\"multi\" must be true or false");
        goto done;
    }
    if (multi) p->multi = cJSON_IsTrue(multi);
    int n = cJSON_GetArraySize(pixels);
    if (n != npx) {
        reply_error(rep, 400, "\"pixels\" has %d values, expected %d (28x28, row by row)", n, npx);
        goto done;
    }
    uint8_t raw[PREP_SIDE * PREP_SIDE];
    int i = 0, any = 0, fractional = 0;
    double top = 0;
    for (const cJSON *v = pixels->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 || v->valuedouble > 255) {
            reply_error(rep, 400, "\"pixels\"[%d] is not a number in 0..255", i);
            goto done;
        }
        raw[i] = (uint8_t)lround(v->valuedouble);
        any |= raw[i];
        top = fmax(top, v->valuedouble);
        fractional |= v->valuedouble != floor(v->valuedouble);
    }
    /* a normalised array (x / 255, what numpy and torchvision hand out)
     * would round to a blank or one-level image: say what to send instead */
    if (top <= 1.0 && fractional) {
        reply_error(rep, 400, "\"pixels\" look like values in 0..1 (none above %g, some fractional): "
                              "send 0..255 (multiply by 255)", top);
        goto done;
    }
    if (pre && cJSON_IsFalse(pre)) {
        if (!any) {
            reply_error(rep, 422, "no digit found: every pixel is 0");
            goto done;
        }
        memcpy(p->input[0], raw, (size_t)npx);
        p->n = 1;
        p->info.n_digits = 1;
    } else if ((p->n = p->multi ? preprocess_number(p->input[0], PREP_MAX_DIGITS, raw, 1, PREP_SIDE, PREP_SIDE, &p->info)
                                : preprocess_image(p->input[0], raw, 1, PREP_SIDE, PREP_SIDE, &p->info) + 1) <= 0) {
        reply_error(rep, 422, "%s", dg_errmsg());
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(doc);
    return rc;
}

/* An uploaded image -> p, in colour (coloured ink on tinted paper) and
 * upright (EXIF). Returns 0, or -1 with the reply filled (400/413/415/422). */
static int pixels_from_image(const Request *req, Prepared *p, Reply *rep) {
    uint8_t *rgb;
    int w, h;
    ImageStatus st;
    if (image_decode(req->body, req->len, "upload", 3, &rgb, &w, &h, &st) < 0) {
        reply_error(rep, st == IMAGE_UNSUPPORTED ? 415 : st == IMAGE_TOO_LARGE ? 413 : 400, "%s", dg_errmsg());
        return -1;
    }
    p->n = p->multi ? preprocess_number(p->input[0], PREP_MAX_DIGITS, rgb, 3, w, h, &p->info)
                    : preprocess_image(p->input[0], rgb, 3, w, h, &p->info) + 1;
    free(rgb);
    if (p->n <= 0) {
        reply_error(rep, 422, "%s", dg_errmsg());
        return -1;
    }
    return 0;
}

/* "digit", "confidence", "probabilities" and "input" of one digit, as
 * members of an object being written. Nonzero out of memory. */
static int json_digit(SBuf *b, const float *probs, const uint8_t *input) {
    int best = 0;
    for (int k = 1; k < MODEL_NUM_CLASSES; k++)
        if (probs[k] > probs[best]) best = k;
    int err = sbuf_printf(b, "\"digit\":%d,\"confidence\":%.6f,\"probabilities\":[", best, probs[best]);
    for (int k = 0; k < MODEL_NUM_CLASSES && !err; k++) err = sbuf_printf(b, "%s%.6f", k ? "," : "", probs[k]);
    err = err || sbuf_append(b, "],\"input\":[", 11);
    for (int i = 0; i < PREP_SIDE * PREP_SIDE && !err; i++) err = sbuf_printf(b, "%s%d", i ? "," : "", input[i]);
    return err || sbuf_append(b, "]", 1);
}

static void predict(Routes *r, const Request *req, Reply *rep) {
    const double t0 = now_seconds() * 1e3;
    Prepared *p = calloc(1, sizeof *p);
    if (!p) {
        reply_error(rep, 503, "out of memory");
        return;
    }
    p->multi = req->multi;
    if (req->len == 0) {
        reply_error(rep, 400, "empty body: send an image (PNG, JPEG, BMP, PGM) or JSON {\"pixels\": [784 numbers]}");
        free(p);
        return;
    }
    /* Any content type but JSON: the bytes say what the image is (curl
     * --data-binary labels a PNG as a form, browsers label BMP oddly). */
    if ((is_json(req->content_type) ? pixels_from_json(req, p, rep) : pixels_from_image(req, p, rep)) < 0) {
        free(p);
        return;
    }

#ifdef _OPENMP
    if (omp_get_max_threads() != 1) omp_set_num_threads(1);  /* this thread only (see top) */
#endif
    float probs[PREP_MAX_DIGITS][MODEL_NUM_CLASSES];
    dg_prediction out[PREP_MAX_DIGITS];
    if (dg_predict_batch(r->model, p->input[0], (size_t)p->n, out) != DG_OK) {
        free(p);
        reply_error(rep, 500, "%s", dg_errmsg());
        return;
    }
    for (int d = 0; d < p->n; d++) memcpy(probs[d], out[d].probs, sizeof probs[d]);

    SBuf b = {0};
    int err = sbuf_append(&b, "{", 1);
    if (p->multi) {
        err = err || sbuf_append(&b, "\"number\":\"", 10);
        for (int d = 0; d < p->n && !err; d++) {
            int best = 0;
            for (int k = 1; k < MODEL_NUM_CLASSES; k++)
                if (probs[d][k] > probs[d][best]) best = k;
            err = sbuf_printf(&b, "%d", best);
        }
        err = err || sbuf_append(&b, "\",\"digits\":[", 12);
        for (int d = 0; d < p->n && !err; d++)
            err = sbuf_append(&b, d ? ",{" : "{", d ? 2 : 1) || json_digit(&b, probs[d], p->input[d]) ||
                  sbuf_append(&b, "}", 1);
        err = err || sbuf_append(&b, "]", 1);
        if (p->info.n_digits > p->n)
            err = err || sbuf_printf(&b, ",\"warning\":\"the image seems to hold %d digits; reading the first %d\"",
                                     p->info.n_digits, p->n);
    } else {
        err = err || json_digit(&b, probs[0], p->input[0]);
        if (p->info.n_digits > 1)
            err = err || sbuf_printf(&b, ",\"warning\":\"the image seems to hold %d digits; reading the largest "
                                         "(multi=true reads them all)\"", p->info.n_digits);
    }
    err = err || sbuf_printf(&b, ",\"ms\":%.3f}", now_seconds() * 1e3 - t0);
    free(p);
    if (err) {
        sbuf_free(&b);
        reply_error(rep, 500, "out of memory");
        return;
    }
    reply_json(rep, 200, &b);
}

void routes_handle(Routes *r, Route route, const Request *req, Reply *rep) {
    memset(rep, 0, sizeof *rep);
    switch (route) {
    case ROUTE_PAGE:
        reply_static(rep, 200, "text/html; charset=utf-8", web_index_html, web_index_html_len);
        break;
    case ROUTE_JS:
        reply_static(rep, 200, "text/javascript; charset=utf-8", web_app_js, web_app_js_len);
        break;
    case ROUTE_CSS:
        reply_static(rep, 200, "text/css; charset=utf-8", web_style_css, web_style_css_len);
        break;
    case ROUTE_HEALTH:
        reply_static(rep, 200, "application/json", r->health_json, r->health_json_len);
        break;
    case ROUTE_MODEL:
        reply_static(rep, 200, "application/json", r->model_json, r->model_json_len);
        break;
    case ROUTE_PREDICT:
        predict(r, req, rep);
        break;
    }
}

void routes_request(Routes *r, const char *method, const char *path, const Request *req, Reply *rep) {
    Route route;
    const char *allow = NULL;
    /* the query (as libmicrohttpd separates it for http.c): only multi= is read */
    char bare[256];
    const char *q = strchr(path, '?');
    Request with_query = *req;
    if (q) {
        snprintf(bare, sizeof bare, "%.*s", (int)(q - path < 255 ? q - path : 255), path);
        for (const char *a = q + 1; *a; a += strcspn(a, "&"), a += *a == '&') {
            if (strncmp(a, "multi=", 6) != 0) continue;
            char v[8];
            snprintf(v, sizeof v, "%.*s", (int)strcspn(a + 6, "&"), a + 6);
            with_query.multi = routes_query_flag(v);
        }
        path = bare;
    }
    int st = routes_match(method, path, &route, &allow);
    if (st) routes_refuse(st, method, path, allow, rep);
    else routes_handle(r, route, &with_query, rep);
}
