/* test_serve.c — the HTTP API end to end: the server runs in-process on an
 * ephemeral loopback port (serve_start) and is driven with libcurl, a real
 * HTTP client. Every endpoint, every bad request the server must refuse
 * (with its status and a JSON error), a burst of 50 concurrent predictions,
 * a stalled client timing out, and the access log.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/util.h"
#include "digits_internal.h"
#include "serve/serve.h"
#include "testutil.h"

#define MAX_BODY (1u << 20)
#define TIMEOUT_S 1
#define BURST 50
#define NPX (28 * 28)

static Server *server;
static int port;
static FILE *access_log;
static Dataset mnist;
static Classifier local;  /* the same model in-process: what the server must answer */
static const char *model_path;

/* ---- HTTP client ------------------------------------------------------------------------ */

typedef struct {
    long status;
    char *body;
    size_t len;
    char allow[80];
    char type[80];
} Resp;

static size_t on_body(char *p, size_t size, size_t n, void *user) {
    Resp *r = user;
    char *b = realloc(r->body, r->len + size * n + 1);
    if (!b) return 0;
    memcpy(b + r->len, p, size * n);
    r->len += size * n;
    b[r->len] = 0;
    r->body = b;
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *user) {
    Resp *r = user;
    size_t len = size * n;
    char line[64];
    snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line ? len : sizeof line - 1), p);
    line[strcspn(line, "\r\n")] = 0;
    if (strncasecmp(line, "Allow: ", 7) == 0) snprintf(r->allow, sizeof r->allow, "%s", line + 7);
    if (strncasecmp(line, "Content-Type: ", 14) == 0) snprintf(r->type, sizeof r->type, "%s", line + 14);
    return len;
}

/* Feeds a chunked upload in small pieces (no length known up front). */
typedef struct {
    const uint8_t *p;
    size_t left;
} Upload;

static size_t on_read(char *out, size_t size, size_t n, void *user) {
    Upload *u = user;
    size_t k = size * n < 4096 ? size * n : 4096;
    if (k > u->left) k = u->left;
    memcpy(out, u->p, k);
    u->p += k;
    u->left -= k;
    return k;
}

/* One request on a fresh handle. type NULL: no Content-Type; chunked:
 * send the body without a length. mime (if non-NULL) replaces the body. */
static Resp http_full(const char *method, const char *path, const char *type, const void *body, size_t len,
                      int chunked, int mime_image) {
    Resp r = {0};
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *hdr = NULL;
    char ct[160];
    if (type) {
        snprintf(ct, sizeof ct, "Content-Type: %s", type);
        hdr = curl_slist_append(hdr, ct);
    }
    if (chunked) hdr = curl_slist_append(hdr, "Transfer-Encoding: chunked");
    hdr = curl_slist_append(hdr, "Expect:");  /* no 100-continue round trip */
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_mime *mime = NULL;
    Upload upload = {body, len};
    if (mime_image) {
        mime = curl_mime_init(c);
        curl_mimepart *note = curl_mime_addpart(mime);  /* a text field first: must be skipped */
        curl_mime_name(note, "note");
        curl_mime_data(note, "hello", CURL_ZERO_TERMINATED);
        if (body) {
            curl_mimepart *part = curl_mime_addpart(mime);
            curl_mime_name(part, "image");
            curl_mime_filename(part, "digit.img");
            curl_mime_data(part, body, len);
        }
        curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (chunked) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &upload);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hdr);
    curl_mime_free(mime);
    curl_easy_cleanup(c);
    if (!r.body) r.body = calloc(1, 1);
    return r;
}

static Resp http(const char *method, const char *path, const char *type, const void *body, size_t len) {
    return http_full(method, path, type, body, len, 0, 0);
}

/* The status must be `status` and the body a JSON object with an "error"
 * string containing `needle`. */
static void expect_error(Resp r, long status, const char *needle) {
    if (r.status != status) fail_msg("status %ld, expected %ld: %s", r.status, status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (!cJSON_IsString(e)) fail_msg("no JSON error in: %s", r.body);
    if (!strstr(e->valuestring, needle)) fail_msg("error \"%s\" lacks \"%s\"", e->valuestring, needle);
    print_message("%ld %s\n", r.status, e->valuestring);
    cJSON_Delete(j);
    free(r.body);
}

/* ---- images -------------------------------------------------------------------------------- */

/* The bytes of a grayscale PNG (through a temporary file). */
static uint8_t *png_bytes(const uint8_t *px, int w, int h, size_t *len) {
    char path[] = "/tmp/digits-test-serve-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(image_write_png_gray(path, px, w, h), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    unlink(path);
    return b;
}

/* What the server must say for these pixels: local preprocessing + model. */
static int expected_digit(const uint8_t *gray, int w, int h, float *probs) {
    uint8_t in[NPX];
    assert_int_equal(preprocess_digit(in, gray, w, h, NULL), 0);
    float p[10];
    classifier_predict(&local, in, 1, p, NULL);
    int best = 0;
    for (int k = 1; k < 10; k++)
        if (p[k] > p[best]) best = k;
    if (probs) memcpy(probs, p, sizeof p);
    return best;
}

/* Checks a prediction reply against the local answer; returns the digit. */
static int check_prediction(Resp r, const uint8_t *gray, int w, int h) {
    if (r.status != 200) fail_msg("status %ld: %s", r.status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    assert_non_null(j);
    const cJSON *digit = cJSON_GetObjectItemCaseSensitive(j, "digit");
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(j, "confidence");
    const cJSON *probs = cJSON_GetObjectItemCaseSensitive(j, "probabilities");
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(j, "input");
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(j, "ms");
    assert_true(cJSON_IsNumber(digit) && cJSON_IsNumber(conf) && cJSON_IsNumber(ms));
    assert_true(cJSON_IsArray(probs) && cJSON_GetArraySize(probs) == 10);
    assert_true(cJSON_IsArray(input) && cJSON_GetArraySize(input) == NPX);
    float want[10];
    int best = expected_digit(gray, w, h, want);
    assert_int_equal(digit->valueint, best);
    double sum = 0;
    for (int k = 0; k < 10; k++) {
        double p = cJSON_GetArrayItem(probs, k)->valuedouble;
        assert_true(fabs(p - want[k]) < 1e-5);
        sum += p;
    }
    assert_true(fabs(sum - 1.0) < 1e-4);
    assert_true(fabs(conf->valuedouble - want[best]) < 1e-5);
    uint8_t in[NPX];
    preprocess_digit(in, gray, w, h, NULL);
    for (int i = 0; i < NPX; i++) assert_int_equal(cJSON_GetArrayItem(input, i)->valueint, in[i]);
    cJSON_Delete(j);
    free(r.body);
    return best;
}

/* ---- setup ------------------------------------------------------------------------------------ */

static int setup(void **state) {
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *data = getenv("DIGITS_DATA") ? getenv("DIGITS_DATA") : "data/mnist";
    if (dataset_load(data, "test", &mnist) < 0) {
        fprintf(stderr, "test_serve: %s\n", dg_errmsg());
        return -1;
    }
    static char path[1024];
    snprintf(path, sizeof path, "%s", tu_fixture("fixtures/lenet5-small.safetensors"));
    model_path = path;
    if (classifier_load(&local, model_path, 1, 1) < 0) {
        fprintf(stderr, "test_serve: %s\n", dg_errmsg());
        return -1;
    }
    access_log = tmpfile();
    ServeConfig cfg;
    serve_config_defaults(&cfg);
    cfg.model_path = model_path;
    cfg.port = 0;
    cfg.threads = 4;
    cfg.max_body = MAX_BODY;
    cfg.timeout_s = TIMEOUT_S;
    cfg.log = access_log;
    port = serve_start(&server, &cfg);
    if (port <= 0) {
        fprintf(stderr, "test_serve: %s\n", dg_errmsg());
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    serve_stop(server);
    if (access_log) fclose(access_log);
    classifier_free(&local);
    dataset_free(&mnist);
    curl_global_cleanup();
    return 0;
}

/* ---- endpoints ----------------------------------------------------------------------------------- */

static void test_page_and_assets(void **state) {
    (void)state;
    Resp r = http("GET", "/", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.type, "text/html"));
    assert_non_null(strstr(r.body, "<canvas id=\"pad\""));
    assert_null(strstr(r.body, "http://"));  /* nothing fetched from elsewhere */
    assert_null(strstr(r.body, "https://"));
    free(r.body);
    r = http("GET", "/app.js", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.type, "javascript"));
    assert_non_null(strstr(r.body, "api/predict"));
    free(r.body);
    r = http("GET", "/style.css", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.type, "text/css"));
    free(r.body);
    r = http("HEAD", "/", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    free(r.body);
}

static void test_health_and_model(void **state) {
    (void)state;
    Resp r = http("GET", "/healthz", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"status\":\"ok\""));
    free(r.body);
    r = http("GET", "/api/model", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, "lenet5");
    assert_string_equal(cJSON_GetObjectItem(j, "kind")->valuestring, "cnn");
    assert_int_equal(cJSON_GetObjectItem(j, "parameters")->valuedouble, local.models[0].n_param);
    assert_non_null(strstr(cJSON_GetObjectItem(j, "architecture")->valuestring, "conv2d out=6 kernel=5"));
    const cJSON *acc = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "metrics"), "test_accuracy");
    assert_true(cJSON_IsNumber(acc) && acc->valuedouble > 0.97);
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "train_config")));
    cJSON_Delete(j);
    free(r.body);
}

static void test_predict_png_raw_and_multipart(void **state) {
    (void)state;
    int right = 0;
    for (int i = 0; i < 20; i++) {
        const uint8_t *d = mnist.pixels + (size_t)i * NPX;
        size_t len;
        uint8_t *png = png_bytes(d, 28, 28, &len);
        int got = check_prediction(http("POST", "/api/predict", "image/png", png, len), d, 28, 28);
        right += got == mnist.labels[i];
        assert_int_equal(check_prediction(http_full("POST", "/api/predict", NULL, png, len, 0, 1), d, 28, 28), got);
        free(png);
    }
    print_message("20 MNIST PNGs over HTTP: %d right\n", right);
    assert_true(right >= 19);
}

static void test_predict_other_formats(void **state) {
    (void)state;
    /* A big dark-on-light PGM, sent without a content type (curl's default is a form type). */
    const int W = 200, H = 160;
    uint8_t *big = malloc((size_t)W * H);
    assert_non_null(big);
    memset(big, 255, (size_t)W * H);
    const uint8_t *d = mnist.pixels;  /* a 7 */
    for (int y = 0; y < 112; y++)
        for (int x = 0; x < 112; x++) big[(y + 20) * W + x + 70] = (uint8_t)(255 - d[(y / 4) * 28 + x / 4]);
    size_t hl = (size_t)snprintf(NULL, 0, "P5\n%d %d\n255\n", W, H);
    uint8_t *pgm = malloc(hl + (size_t)W * H + 1);
    snprintf((char *)pgm, hl + 1, "P5\n%d %d\n255\n", W, H);
    memcpy(pgm + hl, big, (size_t)W * H);
    int got = check_prediction(http("POST", "/api/predict", "application/x-www-form-urlencoded", pgm, hl + (size_t)W * H), big, W, H);
    assert_int_equal(got, mnist.labels[0]);
    /* the same as a chunked upload (no Content-Length) */
    check_prediction(http_full("POST", "/api/predict", "image/x-portable-graymap", pgm, hl + (size_t)W * H, 1, 0), big, W, H);
    free(pgm);
    free(big);
}

/* Two digits side by side in one PNG: read alone, the larger one with a
 * "warning" that there are two; with ?multi=1 (or "multi": true in JSON)
 * both, left to right, as the "number" and one entry per digit, each the
 * local preprocessing's answer. */
static void test_predict_several_digits(void **state) {
    (void)state;
    const int W = 120, H = 60;
    uint8_t *two = calloc((size_t)W * H, 1), in[2 * NPX];
    assert_non_null(two);
    for (int k = 0; k < 2; k++)  /* MNIST test digits 0 and 1, 2x, at x = 4 and 60 */
        for (int y = 0; y < 56; y++)
            for (int x = 0; x < 56; x++) two[(size_t)(y + 2) * W + 4 + 56 * k + x] = mnist.pixels[(size_t)k * NPX + (y / 2) * 28 + x / 2];
    assert_int_equal(preprocess_number(in, 2, two, 1, W, H, NULL), 2);
    size_t len;
    uint8_t *png = png_bytes(two, W, H, &len);
    Resp r = http("POST", "/api/predict", "image/png", png, len);
    assert_int_equal(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *warning = cJSON_GetObjectItemCaseSensitive(j, "warning");
    if (!cJSON_IsString(warning) || !strstr(warning->valuestring, "seems to hold 2 digits")) fail_msg("no warning: %s", r.body);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "digit")));
    cJSON_Delete(j);
    free(r.body);
    char want[3] = {0};
    for (int k = 0; k < 2; k++) {
        float p[10];
        classifier_predict(&local, in + (size_t)k * NPX, 1, p, NULL);
        int best = 0;
        for (int c = 1; c < 10; c++) best = p[c] > p[best] ? c : best;
        want[k] = (char)('0' + best);
    }
    for (int form = 0; form < 2; form++) {
        r = http("POST", form ? "/api/predict?multi=true" : "/api/predict?multi=1", "image/png", png, len);
        assert_int_equal(r.status, 200);
        j = cJSON_Parse(r.body);
        const cJSON *number = cJSON_GetObjectItemCaseSensitive(j, "number");
        const cJSON *digits = cJSON_GetObjectItemCaseSensitive(j, "digits");
        if (!cJSON_IsString(number) || strcmp(number->valuestring, want) != 0) fail_msg("want \"%s\": %s", want, r.body);
        assert_true(cJSON_IsArray(digits) && cJSON_GetArraySize(digits) == 2);
        for (int k = 0; k < 2; k++) {
            const cJSON *d = cJSON_GetArrayItem(digits, k), *input = cJSON_GetObjectItemCaseSensitive(d, "input");
            assert_int_equal(cJSON_GetObjectItemCaseSensitive(d, "digit")->valueint, want[k] - '0');
            for (int i = 0; i < NPX; i++) assert_int_equal(cJSON_GetArrayItem(input, i)->valueint, in[(size_t)k * NPX + i]);
        }
        assert_null(cJSON_GetObjectItemCaseSensitive(j, "warning"));
        cJSON_Delete(j);
        free(r.body);
    }
    free(png);
    free(two);
    /* JSON pixels: "multi" must be a boolean */
    const char bad[] = "{\"pixels\":[0],\"multi\":1}";
    expect_error(http("POST", "/api/predict", "application/json", bad, sizeof bad - 1), 400, "\"multi\" must be true or false");
}

static void test_predict_json(void **state) {
    (void)state;
    const uint8_t *d = mnist.pixels + 3 * NPX;
    char *json = malloc(8 * NPX + 64);
    assert_non_null(json);
    for (int pre = 0; pre < 2; pre++) {
        size_t n = (size_t)sprintf(json, "{\"pixels\":[");
        for (int i = 0; i < NPX; i++) n += (size_t)sprintf(json + n, "%s%d", i ? "," : "", d[i]);
        n += (size_t)sprintf(json + n, "]%s}", pre ? "" : ",\"preprocess\":false");
        Resp r = http("POST", "/api/predict", "application/json; charset=utf-8", json, n);
        if (pre) {
            check_prediction(r, d, 28, 28);
        } else {
            /* taken as they are: "input" echoes the pixels */
            assert_int_equal(r.status, 200);
            cJSON *j = cJSON_Parse(r.body);
            const cJSON *in = cJSON_GetObjectItem(j, "input");
            for (int i = 0; i < NPX; i++) assert_int_equal(cJSON_GetArrayItem(in, i)->valueint, d[i]);
            float p[10];
            classifier_predict(&local, d, 1, p, NULL);
            int best = 0;
            for (int k = 1; k < 10; k++)
                if (p[k] > p[best]) best = k;
            assert_int_equal(cJSON_GetObjectItem(j, "digit")->valueint, best);
            cJSON_Delete(j);
            free(r.body);
        }
    }
    free(json);
}

/* ---- bad requests ------------------------------------------------------------------------------------ */

static void test_bad_requests(void **state) {
    (void)state;
    /* body over the limit: with a length (refused before reading) and chunked (drained, then refused) */
    size_t big = MAX_BODY + 4096;
    uint8_t *zeros = calloc(1, big);
    assert_non_null(zeros);
    expect_error(http("POST", "/api/predict", "image/png", zeros, big), 413, "limit");
    expect_error(http_full("POST", "/api/predict", "image/png", zeros, big, 1, 0), 413, "limit");
    free(zeros);

    /* not an image */
    const char garbage[] = "\x13\x37 definitely not an image, just bytes \xff\xfe";
    expect_error(http("POST", "/api/predict", "image/png", garbage, sizeof garbage - 1), 415, "unknown image format");
    expect_error(http("POST", "/api/predict", "image/x-portable-pixmap", "P6 2 2 255\n", 11), 415, "not supported");

    /* a PNG whose header claims 100000 x 100000 pixels: refused from the header */
    uint8_t bomb[33] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                        0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 0, 0, 0, 0};
    expect_error(http("POST", "/api/predict", "image/png", bomb, sizeof bomb), 413, "100000");
    /* a PNG cut in half: corrupt */
    size_t len;
    uint8_t *png = png_bytes(mnist.pixels, 28, 28, &len);
    expect_error(http("POST", "/api/predict", "image/png", png, len / 2), 400, "bad PNG");
    free(png);

    /* nothing to recognise: all white, all black, a JSON of zeros */
    uint8_t white[64 * 64];
    memset(white, 255, sizeof white);
    png = png_bytes(white, 64, 64, &len);
    expect_error(http("POST", "/api/predict", "image/png", png, len), 422, "no digit found");
    free(png);
    memset(white, 0, sizeof white);
    png = png_bytes(white, 64, 64, &len);
    expect_error(http_full("POST", "/api/predict", NULL, png, len, 0, 1), 422, "no digit found");
    free(png);
    char zeros_json[4 * NPX + 64];
    size_t n = (size_t)sprintf(zeros_json, "{\"pixels\":[0");
    for (int i = 1; i < NPX; i++) n += (size_t)sprintf(zeros_json + n, ",0");
    sprintf(zeros_json + n, "]}");
    expect_error(http("POST", "/api/predict", "application/json", zeros_json, strlen(zeros_json)), 422, "no digit found");

    /* bad JSON */
    const char *j1 = "{\"pixels\": [1, 2,";
    expect_error(http("POST", "/api/predict", "application/json", j1, strlen(j1)), 400, "invalid JSON");
    const char *j2 = "{\"pixels\": [1, 2, 3]}";
    expect_error(http("POST", "/api/predict", "application/json", j2, strlen(j2)), 400, "has 3 values, expected 784");
    const char *j3 = "[1, 2, 3]";
    expect_error(http("POST", "/api/predict", "application/json", j3, strlen(j3)), 400, "expected a JSON object");
    n = (size_t)sprintf(zeros_json, "{\"pixels\":[999");
    for (int i = 1; i < NPX; i++) n += (size_t)sprintf(zeros_json + n, ",0");
    sprintf(zeros_json + n, "]}");
    expect_error(http("POST", "/api/predict", "application/json", zeros_json, n + 2), 400, "[0] is not a number in 0..255");
    const char *j4 = "{\"pixels\": \"abc\"}";
    expect_error(http("POST", "/api/predict", "application/json", j4, strlen(j4)), 400, "expected a JSON object");

    /* empty bodies, multipart without a file */
    expect_error(http("POST", "/api/predict", "image/png", "", 0), 400, "empty body");
    expect_error(http_full("POST", "/api/predict", NULL, NULL, 0, 0, 1), 400, "without a file part");

    /* paths and methods */
    expect_error(http("GET", "/nope", NULL, NULL, 0), 404, "no such path");
    expect_error(http("GET", "/api/predict/../../etc/passwd", NULL, NULL, 0), 404, "no such path");
    Resp r = http("GET", "/api/predict", NULL, NULL, 0);
    assert_string_equal(r.allow, "POST");
    expect_error(r, 405, "not allowed");
    r = http("POST", "/healthz", "text/plain", "x", 1);
    assert_string_equal(r.allow, "GET, HEAD");
    expect_error(r, 405, "not allowed");
    expect_error(http("DELETE", "/", NULL, NULL, 0), 405, "not allowed");

    /* and the server is still fine */
    r = http("GET", "/healthz", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    free(r.body);
}

/* ---- many clients at once, one slow client ---------------------------------------------------------------- */

typedef struct {
    int index;
    long status;
    int digit, want;
} Job;

static uint8_t *burst_png[BURST];
static size_t burst_len[BURST];

static void *burst_one(void *arg) {
    Job *j = arg;
    Resp r = http("POST", "/api/predict", "image/png", burst_png[j->index], burst_len[j->index]);
    j->status = r.status;
    cJSON *doc = cJSON_Parse(r.body);
    const cJSON *d = cJSON_GetObjectItem(doc, "digit");
    j->digit = cJSON_IsNumber(d) ? d->valueint : -1;
    cJSON_Delete(doc);
    free(r.body);
    return NULL;
}

static void test_concurrent_burst(void **state) {
    (void)state;
    pthread_t th[BURST];
    Job jobs[BURST];
    for (int i = 0; i < BURST; i++) {
        const uint8_t *d = mnist.pixels + (size_t)(100 + i) * NPX;
        burst_png[i] = png_bytes(d, 28, 28, &burst_len[i]);
        jobs[i] = (Job){.index = i, .want = expected_digit(d, 28, 28, NULL)};
    }
    for (int i = 0; i < BURST; i++) assert_int_equal(pthread_create(&th[i], NULL, burst_one, &jobs[i]), 0);
    int ok = 0;
    for (int i = 0; i < BURST; i++) {
        pthread_join(th[i], NULL);
        ok += jobs[i].status == 200 && jobs[i].digit == jobs[i].want;
        free(burst_png[i]);
    }
    print_message("%d parallel predictions: %d answered 200 with the expected digit\n", BURST, ok);
    assert_int_equal(ok, BURST);
}

/* A client that sends half a request and stalls is disconnected after the
 * timeout, and others are served meanwhile. */
static void test_slow_client_times_out(void **state) {
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    const char *part = "POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 5000\r\n\r\n\x89PNG";
    assert_true(send(fd, part, strlen(part), 0) > 0);
    double t0 = now_seconds();
    Resp r = http("GET", "/healthz", NULL, NULL, 0);  /* not blocked by the stalled one */
    assert_int_equal(r.status, 200);
    free(r.body);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    ssize_t got;
    while ((got = recv(fd, buf, sizeof buf, 0)) > 0) {
    }
    double waited = now_seconds() - t0;
    close(fd);
    print_message("stalled client closed after %.2f s (timeout %d s), recv %zd\n", waited, TIMEOUT_S, got);
    assert_true(got == 0 || got == -1);
    assert_true(waited >= TIMEOUT_S * 0.5 && waited < TIMEOUT_S + 4.0);
}

/* Starting fails cleanly: port in use, unreadable model, unknown host. */
static void test_start_errors(void **state) {
    (void)state;
    ServeConfig cfg;
    serve_config_defaults(&cfg);
    cfg.model_path = model_path;
    cfg.port = port;  /* taken by the running server */
    cfg.threads = 1;
    cfg.log = NULL;
    Server *s;
    assert_int_equal(serve_start(&s, &cfg), -1);
    assert_null(s);
    print_message("port in use: %s\n", dg_errmsg());
    assert_non_null(strstr(dg_errmsg(), "cannot listen"));
    cfg.port = 0;
    cfg.model_path = "/nonexistent/model.safetensors";
    assert_int_equal(serve_start(&s, &cfg), -1);
    assert_non_null(strstr(dg_errmsg(), "/nonexistent/model.safetensors"));
    cfg.model_path = model_path;
    cfg.host = "no-such-host";
    assert_int_equal(serve_start(&s, &cfg), -1);
    assert_non_null(strstr(dg_errmsg(), "not an IP address"));
    /* IPv6 loopback, when the machine has it */
    cfg.host = "::1";
    int p6 = serve_start(&s, &cfg);
    if (p6 > 0) serve_stop(s);
    else print_message("no IPv6 loopback here: %s\n", dg_errmsg());
}

/* Last: stop the server (the log is complete then) and read the access log. */
static void test_access_log(void **state) {
    (void)state;
    serve_stop(server);
    server = NULL;
    fflush(access_log);
    rewind(access_log);
    char line[512];
    int lines = 0, predict_ok = 0, notfound = 0, too_large = 0, timed_out = 0;
    while (fgets(line, sizeof line, access_log)) {
        lines++;
        char stamp[40], method[16], path[256], rest[64];
        int status;
        size_t bytes;
        double ms;
        int k = sscanf(line, "%39s %15s %255s %d %zu %lfms%63[^\n]", stamp, method, path, &status, &bytes, &ms, rest);
        if (k < 6) fail_msg("bad log line: %s", line);
        predict_ok += !strcmp(method, "POST") && !strcmp(path, "/api/predict") && status == 200 && bytes > 1000;
        notfound += status == 404;
        too_large += status == 413;
        timed_out += k == 7 && strstr(rest, "timed out") != NULL;
    }
    print_message("access log: %d lines, %d predictions, %d 404, %d 413, %d timed out\n", lines, predict_ok,
                  notfound, too_large, timed_out);
    assert_true(predict_ok >= 40 + BURST);
    assert_true(notfound >= 2 && too_large >= 3 && timed_out >= 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_and_assets),
        cmocka_unit_test(test_health_and_model),
        cmocka_unit_test(test_predict_png_raw_and_multipart),
        cmocka_unit_test(test_predict_other_formats),
        cmocka_unit_test(test_predict_json),
        cmocka_unit_test(test_predict_several_digits),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_concurrent_burst),
        cmocka_unit_test(test_slow_client_times_out),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_access_log),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
