/* http.c — the HTTP side of `digits serve` on libmicrohttpd: binding,
 * the connection thread pool, bounded request bodies (raw or
 * multipart/form-data), replies, the access log. What each endpoint answers
 * is routes.c's.
 *
 * Request life (MHD calls on_request several times per request):
 *   1. headers in: match the route (404/405 at once; with cfg.cors_origin
 *      an OPTIONS preflight is answered 204 here); for a prediction, a
 *      Content-Length over the limit is refused (413) before any byte of
 *      the body is read when the client waits for "100 Continue" (it then
 *      never sends the body) or when the body is over the limit plus
 *      DISCARD_MAX; a multipart body gets a post processor.
 *   2. body chunks: appended (raw) or parsed (multipart: the first file
 *      part, or the field named "image" or "file"). A body over the limit
 *      (a Content-Length over it, or a chunked body that passes it) is read
 *      on and thrown away, then answered 413: a server that answers and
 *      closes while the client is still sending makes the kernel reset the
 *      connection, and the client (a browser, curl without 100-continue)
 *      may never read the 413. Past the limit plus DISCARD_MAX the
 *      connection is dropped instead.
 *   3. body complete: routes_handle -> queue the reply.
 * on_completed logs one line and frees the request's state.
 *
 * Slow clients: MHD closes connections idle for cfg.timeout_s. Many
 * clients: MHD's thread pool (cfg.threads threads, epoll on Linux), each
 * thread serving many connections.
 *
 * Left out on purpose: TLS (put a reverse proxy in front), keep-alive
 * tuning, per-client rate limits.
 */
#include "serve/serve.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "digits_internal.h"
#include "serve/routes.h"

/* A body over the limit is drained up to this many more bytes so the
 * client can read its 413 (a 50 MB photo against the 8 MiB default);
 * beyond that the connection is dropped. */
#define DISCARD_MAX (64u << 20)

struct Server {
    struct MHD_Daemon *daemon;
    Routes *routes;
    ServeConfig cfg;
    int port;
};

/* Per-request state (MHD's *con_cls). */
typedef struct {
    double t0;
    char method[16];
    char path[200];          /* printable copy for the log */
    Route route;
    SBuf body;               /* the raw body, or the chosen multipart part */
    uint64_t received;       /* body bytes seen, kept or not */
    int too_large, oom, bad_multipart;
    uint64_t declared;       /* Content-Length when too_large from the headers, else 0 */
    const char *cors;        /* cfg.cors_origin: Access-Control-Allow-Origin on the reply */
    struct MHD_PostProcessor *pp;
    int part_chosen;
    char part_key[64];
    char part_type[128];
    int status;              /* of the queued reply; 0 until then */
    size_t bytes;
} Conn;

/* Copy for the log: control bytes and spaces replaced (no log injection), truncated. */
static void printable(char *dst, size_t cap, const char *src) {
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++) dst[i] = (unsigned char)src[i] > 0x20 && src[i] != 0x7f ? src[i] : '?';
    dst[i] = 0;
}

/* ---- replies ----------------------------------------------------------------------- */

static enum MHD_Result send_reply(struct MHD_Connection *mc, Conn *c, Reply *rep) {
    struct MHD_Response *r = MHD_create_response_from_buffer(
        rep->len, rep->body, rep->is_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_FREE);
    if (!r) {
        if (!rep->is_static) free(rep->body);
        return MHD_NO;
    }
    if (rep->content_type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (c->route == ROUTE_PAGE && rep->status == 200)  /* nothing but our own files: no CDN, no network */
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data: blob:; object-src 'none'");
    if (rep->allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rep->allow);
    if (c->cors) MHD_add_response_header(r, "Access-Control-Allow-Origin", c->cors);
    c->status = rep->status;
    c->bytes = rep->len;
    enum MHD_Result ok = MHD_queue_response(mc, (unsigned)rep->status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *mc, Conn *c, int status, const char *msg) {
    Reply rep = {0};
    reply_error(&rep, status, "%s", msg);
    return send_reply(mc, c, &rep);
}

/* The answer to a CORS preflight (OPTIONS on a known path, cfg.cors_origin
 * set): 204, the methods of the path, the one request header the API reads
 * (Content-Type), and how long the browser may cache this answer. */
static enum MHD_Result send_preflight(struct MHD_Connection *mc, Conn *c, const char *methods) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", c->cors);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", methods);
    MHD_add_response_header(r, "Access-Control-Allow-Headers", "Content-Type");
    MHD_add_response_header(r, "Access-Control-Max-Age", "600");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    c->status = 204;
    c->bytes = 0;
    enum MHD_Result ok = MHD_queue_response(mc, 204, r);
    MHD_destroy_response(r);
    return ok;
}

/* ---- multipart ------------------------------------------------------------------------ */

/* Keeps the first file part (or the field "image"/"file"); other fields are
 * ignored. Parts arrive in pieces: `off` is where this piece goes. */
static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                               const char *content_type, const char *transfer_encoding, const char *data,
                               uint64_t off, size_t size) {
    (void)kind, (void)transfer_encoding;
    Conn *c = cls;
    if (!c->part_chosen && (filename || (key && (!strcmp(key, "image") || !strcmp(key, "file"))))) {
        c->part_chosen = 1;
        snprintf(c->part_key, sizeof c->part_key, "%s", key ? key : "");
        snprintf(c->part_type, sizeof c->part_type, "%s", content_type ? content_type : "");
    }
    if (!c->part_chosen || strcmp(key ? key : "", c->part_key) != 0 || off != c->body.len)
        return MHD_YES;  /* another field, or a second part of the same name */
    if (size && sbuf_append(&c->body, data, size) < 0) {
        c->oom = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

static int starts_with_ci(const char *s, const char *prefix) {
    return s && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* ---- the access handler ------------------------------------------------------------------ */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    (void)version;
    Server *s = cls;
    Conn *c = *con_cls;

    if (!c) {  /* 1. headers */
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        *con_cls = c;
        c->t0 = now_seconds() * 1e3;
        printable(c->method, sizeof c->method, method);
        printable(c->path, sizeof c->path, url);
        c->cors = s->cfg.cors_origin;
        const char *allow = NULL;
        int st = routes_match(method, url, &c->route, &allow);
        if (st == 405 && c->cors && strcmp(method, "OPTIONS") == 0) return send_preflight(mc, c, allow);
        if (st) {
            Reply rep;
            routes_refuse(st, c->method, c->path, allow, &rep);
            return send_reply(mc, c, &rep);
        }
        if (c->route != ROUTE_PREDICT) return MHD_YES;
        const char *len = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (len) {
            char *end;
            unsigned long long n = strtoull(len, &end, 10);
            if (n > s->cfg.max_body) {
                const char *expect = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
                c->too_large = 1;
                c->declared = n;
                if ((expect && strcasecmp(expect, "100-continue") == 0) || n - s->cfg.max_body > DISCARD_MAX) {
                    char msg[128];
                    snprintf(msg, sizeof msg, "body of %llu bytes is over the %zu-byte limit", n, s->cfg.max_body);
                    return send_error(mc, c, 413, msg);  /* no "100 Continue": the body never comes */
                }
                return MHD_YES;  /* read it and throw it away (2.), then 413 (3.) */
            }
        }
        const char *type = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        if (starts_with_ci(type, "multipart/form-data")) {
            c->pp = MHD_create_post_processor(mc, 16 * 1024, on_part, c);
            if (!c->pp) {
                return send_error(mc, c, 400, "multipart/form-data without a boundary");
            }
        }
        return MHD_YES;
    }

    if (*upload_data_size) {  /* 2. a piece of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        c->received += n;
        if (c->received > s->cfg.max_body && !c->too_large) {
            sbuf_free(&c->body);
            c->too_large = 1;
        }
        if (c->too_large) return c->received > (uint64_t)s->cfg.max_body + DISCARD_MAX ? MHD_NO : MHD_YES;
        if (c->route != ROUTE_PREDICT || c->oom || c->bad_multipart) return MHD_YES;
        if (c->pp) {
            if (MHD_post_process(c->pp, upload_data, n) != MHD_YES && !c->oom) c->bad_multipart = 1;
        } else if (sbuf_append(&c->body, upload_data, n) < 0) {
            c->oom = 1;
        }
        return MHD_YES;
    }

    /* 3. the whole request is in */
    if (c->too_large) {
        char msg[128];
        if (c->declared)
            snprintf(msg, sizeof msg, "body of %llu bytes is over the %zu-byte limit",
                     (unsigned long long)c->declared, s->cfg.max_body);
        else
            snprintf(msg, sizeof msg, "body is over the %zu-byte limit", s->cfg.max_body);
        return send_error(mc, c, 413, msg);
    }
    if (c->oom) return send_error(mc, c, 503, "out of memory reading the request");
    if (c->bad_multipart) return send_error(mc, c, 400, "malformed multipart/form-data body");
    if (c->route == ROUTE_PREDICT && s->cfg.delay_ms > 0)  /* tests: an answer that takes its time */
        nanosleep(&(struct timespec){s->cfg.delay_ms / 1000, (s->cfg.delay_ms % 1000) * 1000000L}, NULL);
    Request req = {0};
    if (c->pp) {
        if (!c->part_chosen)
            return send_error(mc, c, 400, "multipart/form-data without a file part (send the image as field \"image\")");
        req.content_type = c->part_type;
    } else {
        req.content_type = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    }
    req.body = (const uint8_t *)c->body.data;
    req.len = c->body.len;
    req.multi = routes_query_flag(MHD_lookup_connection_value(mc, MHD_GET_ARGUMENT_KIND, "multi"));
    Reply rep;
    routes_handle(s->routes, c->route, &req, &rep);
    return send_reply(mc, c, &rep);
}

/* One log line per request: time, method, path, status, bytes, milliseconds;
 * requests that got no reply say why. */
static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)mc;
    Server *s = cls;
    Conn *c = *con_cls;
    if (!c) return;
    if (s->cfg.log) {
        static const char *why[] = {"", " (error)", " (timed out)", " (shutdown)", " (read error)", " (client closed)"};
        char stamp[32];
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
        const char *reason = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK || (unsigned)toe > 5 ? "" : why[toe];
        fprintf(s->cfg.log, "%s %s %s %d %zu %.1fms%s\n", stamp, c->method, c->path, c->status, c->bytes,
                now_seconds() * 1e3 - c->t0, reason);
        fflush(s->cfg.log);
    }
    if (c->pp) MHD_destroy_post_processor(c->pp);
    sbuf_free(&c->body);
    free(c);
    *con_cls = NULL;
}

/* MHD's own messages. While starting (the calling thread) they become the
 * error message; afterwards they go to the log. */
static _Thread_local int starting;
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    Server *s = cls;
    char msg[300];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    if (starting) dg_set_error("%s", msg);
    else if (s->cfg.log) fprintf(s->cfg.log, "mhd: %s\n", msg);
}

/* ---- start / stop --------------------------------------------------------------------------- */

void serve_config_defaults(ServeConfig *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->port = 8080;
    cfg->threads = 0;
    cfg->max_body = 8u << 20;
    cfg->timeout_s = 15;
    cfg->log = stdout;
}

int serve_start(Server **out, const ServeConfig *cfg) {
    *out = NULL;
    if (!cfg->model_path) return dg_set_error("no model file given");
    if (cfg->port < 0 || cfg->port > 65535) return dg_set_error("port %d outside 0..65535", cfg->port);
    Server *s = calloc(1, sizeof *s);
    if (!s) return dg_set_error("out of memory");
    s->cfg = *cfg;
    if (s->cfg.threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->cfg.threads = n > 0 ? (int)n : 1;
    }
    if (s->cfg.timeout_s <= 0) s->cfg.timeout_s = 15;
    const char *host = s->cfg.host ? s->cfg.host : "127.0.0.1";

    /* The address first, so a typo fails before the model is loaded. Numeric
     * only (no DNS lookup that could hang without a network), plus "localhost". */
    if (strcasecmp(host, "localhost") == 0) host = "127.0.0.1";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST}, *ai;
    int gai = getaddrinfo(host, NULL, &hints, &ai);
    if (gai != 0) {
        free(s);
        return dg_set_error("cannot listen on '%s': not an IP address (%s)", host, gai_strerror(gai));
    }
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    int v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (v6) ((struct sockaddr_in6 *)&addr)->sin6_port = htons((uint16_t)s->cfg.port);
    else ((struct sockaddr_in *)&addr)->sin_port = htons((uint16_t)s->cfg.port);

    s->routes = routes_new(s->cfg.model_path, s->cfg.threads);
    if (!s->routes) {
        free(s);
        return -1;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
    starting = 1;
    dg_set_error("unknown libmicrohttpd error");
    /* The logger first: options are applied in order. A pool of one is no pool. */
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)s->cfg.port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->cfg.timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(s->cfg.threads > 1 ? s->cfg.threads : 0), MHD_OPTION_END);
    starting = 0;
    if (!s->daemon) {
        char why[400];
        snprintf(why, sizeof why, "%s", dg_errmsg());
        routes_free(s->routes);
        free(s);
        return dg_set_error("cannot listen on %s port %d: %s", host, cfg->port, why);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info && info->port ? info->port : s->cfg.port;
    *out = s;
    return s->port;
}

void serve_stop(Server *s) {
    if (!s) return;
    MHD_stop_daemon(s->daemon);  /* joins the threads: no request is running after this */
    routes_free(s->routes);
    free(s);
}
