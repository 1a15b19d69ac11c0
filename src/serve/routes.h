/* routes.h — the endpoints of `digits serve`, apart from HTTP transport:
 * http.c receives a request (line, headers, bounded body), routes.c turns it
 * into a Reply. Internal to src/serve.
 */
#ifndef DG_ROUTES_H
#define DG_ROUTES_H

#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer (response bodies, request bodies). */
typedef struct {
    char *data;
    size_t len, cap;
} SBuf;
/* Append; -1 on out of memory (the buffer is kept as it was). */
int sbuf_append(SBuf *b, const void *p, size_t n);
int sbuf_printf(SBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_free(SBuf *b);

typedef enum { ROUTE_PAGE, ROUTE_JS, ROUTE_CSS, ROUTE_HEALTH, ROUTE_MODEL, ROUTE_PREDICT } Route;

typedef struct {
    const char *content_type;  /* of the body (or of the multipart file part); may be NULL */
    const uint8_t *body;
    size_t len;
    int multi;  /* ?multi=1 (or true) on the URL: read every digit, left to right */
} Request;

typedef struct {
    int status;
    const char *content_type;
    char *body;      /* owned (malloc) unless is_static */
    size_t len;
    int is_static;   /* body lives as long as the server (assets, /api/model) */
    const char *allow;  /* 405: the Allow header */
} Reply;

typedef struct Routes Routes;

/* Loads `workers` classifiers from model_path. NULL with dg_errmsg(). */
Routes *routes_new(const char *model_path, int workers);
void routes_free(Routes *r);

/* The route for a request line, decided before any body is read: 0 and
 * *route, or 404 (unknown path) or 405 (known path, wrong method; *allow
 * lists the methods). */
int routes_match(const char *method, const char *path, Route *route, const char **allow);

/* Answer a matched request. Never fails: errors are replies. */
void routes_handle(Routes *r, Route route, const Request *req, Reply *rep);

/* The reply to a request line routes_match refused (status 404 or 405):
 * a JSON error naming the path, or the method and the allowed ones (405
 * also sets rep->allow). */
void routes_refuse(int status, const char *method, const char *path, const char *allow, Reply *rep);

/* One request whose body is in memory, from request line to reply:
 * routes_match, then routes_refuse or routes_handle. http.c does the same
 * in two steps (the route before the body is read, the answer after, with
 * the body limit and multipart framing in between); fuzz/fuzz_http.c and
 * the tests call this, no socket needed. The caller frees rep->body unless
 * rep->is_static. */
void routes_request(Routes *r, const char *method, const char *path, const Request *req, Reply *rep);

/* A query parameter's value as a flag: 1 for "1", "true" or "yes", else 0
 * (also for NULL: absent). */
int routes_query_flag(const char *value);

/* A JSON error reply {"error": message} (printf-style). */
void reply_error(Reply *rep, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
