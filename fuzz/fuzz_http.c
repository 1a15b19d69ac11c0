/* fuzz_http.c — the server's request handling (src/serve/routes.c) without
 * sockets: routes_request turns method, path, content type and body into a
 * reply, as http.c does once the body is in. Model: the LeNet-5 test
 * fixture (28x28, as the server needs); DIGITS_FUZZ_MODEL overrides it.
 *
 * Input layout (seeds: fuzz/corpus/http/, written by make_corpus.sh):
 *   byte 0    selector: bits 0-2 the method (methods[] below), bit 3 set:
 *             no Content-Type header at all (NULL, not "")
 *   ...\n     the path (up to the first newline)
 *   ...\n     the content type (up to the next newline)
 *   rest      the body
 * A missing newline leaves the fields after it empty. FUZZ_HTTP_VERBOSE=1
 * prints each reply's status and start (to check what a seed reaches).
 *
 * Beyond "no crash, no leak, no undefined behaviour" it checks the reply
 * contract: the status is one the server documents (200 400 404 405 413
 * 415 422; a 500 "out of memory" on a small input is a bug too), a 405
 * carries an Allow header, an error is JSON {"error": "non-empty string"},
 * a prediction is JSON with a digit 0..9, ten probabilities summing to 1
 * and the 784 input pixels.
 *
 * Left out: the transport (http.c on libmicrohttpd): the body limit and
 * the multipart framing (MHD's post processor needs a live connection).
 * A multipart seed still reaches the decoders as raw bytes; bench/load.sh
 * MALFORMED=... sends broken multipart bodies over a socket. */
#include <cjson/cJSON.h>
#include <math.h>

#include "digits_internal.h"
#include "fuzz.h"
#include "serve/routes.h"

static const char *const methods[8] = {"POST", "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "post", ""};

static void fail(const char *why, const Reply *rep) {
    fprintf(stderr, "fuzz_http: %s (status %d, body '%.*s')\n", why, rep->status,
            (int)(rep->len < 400 ? rep->len : 400), rep->body ? rep->body : "");
    abort();
}

/* The reply as a JSON object, or abort. */
static cJSON *reply_json_doc(const Reply *rep) {
    if (!rep->content_type || strcmp(rep->content_type, "application/json") != 0) fail("not JSON", rep);
    cJSON *doc = cJSON_ParseWithLengthOpts(rep->body, rep->len, NULL, 0);
    if (!cJSON_IsObject(doc)) fail("body is not a JSON object", rep);
    return doc;
}

static void check_prediction(const Reply *rep) {
    cJSON *doc = reply_json_doc(rep);
    const cJSON *digit = cJSON_GetObjectItemCaseSensitive(doc, "digit");
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(doc, "confidence");
    const cJSON *probs = cJSON_GetObjectItemCaseSensitive(doc, "probabilities");
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(doc, "input");
    if (!cJSON_IsNumber(digit) || digit->valueint < 0 || digit->valueint > 9) fail("bad digit", rep);
    if (!cJSON_IsNumber(conf) || !cJSON_IsArray(probs) || cJSON_GetArraySize(probs) != MODEL_NUM_CLASSES)
        fail("bad probabilities", rep);
    double sum = 0, best = -1;
    for (const cJSON *p = probs->child; p; p = p->next) {
        if (!cJSON_IsNumber(p) || !(p->valuedouble >= 0 && p->valuedouble <= 1)) fail("probability outside 0..1", rep);
        sum += p->valuedouble;
        if (p->valuedouble > best) best = p->valuedouble;
    }
    if (fabs(sum - 1) > 1e-3 || fabs(best - conf->valuedouble) > 1e-6) fail("probabilities do not sum to 1", rep);
    if (!cJSON_IsArray(input) || cJSON_GetArraySize(input) != PREP_SIDE * PREP_SIDE) fail("bad input echo", rep);
    for (const cJSON *p = input->child; p; p = p->next)
        if (!cJSON_IsNumber(p) || p->valuedouble < 0 || p->valuedouble > 255) fail("input pixel outside 0..255", rep);
    cJSON_Delete(doc);
}

static Routes *routes(void) {
    static Routes *r;
    if (!r) {
        const char *path = getenv("DIGITS_FUZZ_MODEL");
        r = routes_new(path ? path : "tests/fixtures/lenet5-small.safetensors", 1);
        if (!r) {
            fprintf(stderr, "fuzz_http: %s (run from the repository root, or set DIGITS_FUZZ_MODEL)\n", dg_errmsg());
            abort();
        }
    }
    return r;  /* lives as long as the process */
}

/* The next field up to '\n' (or the end) as a malloc'd C string; NUL bytes
 * inside end it early, as they would a header MHD hands over. */
static char *field(const uint8_t **p, const uint8_t *end) {
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = (size_t)((nl ? nl : end) - *p);
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, *p, n);
    s[n] = 0;
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    Routes *r = routes();
    const uint8_t *p = data + 1, *end = data + size;
    const char *method = methods[data[0] & 7];
    char *path = field(&p, end);
    char *type = field(&p, end);
    /* the body as its own allocation of exactly its length: ASan sees over-reads */
    size_t len = (size_t)(end - p);
    uint8_t *body = malloc(len ? len : 1);
    if (!body) abort();
    memcpy(body, p, len);
    Request req = {.content_type = data[0] & 8 ? NULL : type, .body = body, .len = len};

    Reply rep;
    routes_request(r, method, path, &req, &rep);
    if (getenv("FUZZ_HTTP_VERBOSE"))  /* what each seed reaches: status and the reply's start */
        fprintf(stderr, "%s %s -> %d %.*s\n", method, path, rep.status, (int)(rep.len < 100 ? rep.len : 100), rep.body);

    Route route = ROUTE_PAGE;
    const char *allow = NULL;
    int matched = routes_match(method, path, &route, &allow);
    switch (rep.status) {
    case 200: case 400: case 404: case 405: case 413: case 415: case 422: break;
    default: fail("undocumented status", &rep);
    }
    if (!rep.content_type || (rep.len && !rep.body)) fail("no content type or body", &rep);
    if (matched && rep.status != matched) fail("routing disagrees with routes_match", &rep);
    if ((rep.status == 405) != (rep.allow != NULL)) fail("Allow header iff 405", &rep);
    if (rep.status >= 400) {
        cJSON *doc = reply_json_doc(&rep);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(doc, "error");
        if (!cJSON_IsString(e) || !e->valuestring[0]) fail("error without an \"error\" string", &rep);
        cJSON_Delete(doc);
    } else if (route == ROUTE_PREDICT) {
        check_prediction(&rep);
    } else if (route == ROUTE_MODEL || route == ROUTE_HEALTH) {
        cJSON_Delete(reply_json_doc(&rep));
    } else if (!rep.is_static || rep.len == 0) {
        fail("asset not served from the binary", &rep);
    }
    if (!rep.is_static) free(rep.body);
    free(body);
    free(type);
    free(path);
    return 0;
}
