/* serve.h — the web app and HTTP API (`digits serve`), as a library call so
 * tests can run it in-process on an ephemeral port.
 *
 *     ServeConfig cfg;
 *     serve_config_defaults(&cfg);
 *     cfg.model_path = "runs/cnn-bn.safetensors";
 *     cfg.port = 0;                           // any free port
 *     Server *s;
 *     int port = serve_start(&s, &cfg);       // -1: dg_errmsg()
 *     ...                                      // http://127.0.0.1:port/
 *     serve_stop(s);
 *
 * Endpoints (src/serve/routes.c): GET / (the page, embedded at build time),
 * POST /api/predict (an image or {"pixels":[784]}), GET /api/model,
 * GET /healthz; with cfg.cors_origin, OPTIONS preflights on each.
 * libmicrohttpd runs the connections on a pool of cfg.threads threads,
 * which share one model loaded through the public API (dg_model_load: each
 * concurrent prediction runs in a workspace of its own, no lock held while
 * predicting).
 */
#ifndef DG_SERVE_H
#define DG_SERVE_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    const char *model_path;  /* any model file dg_model_load reads, or default/best (required) */
    const char *host;        /* IP address to bind ("127.0.0.1", "::1", "0.0.0.0") or "localhost" */
    int port;                /* 0: an ephemeral port (serve_start returns it) */
    int threads;             /* connection threads; <= 0: one per core */
    size_t max_body;         /* largest request body in bytes; larger: 413 */
    int timeout_s;           /* a connection idle this long is closed (slow clients) */
    FILE *log;               /* one line per request; NULL: none */
    const char *cors_origin; /* Access-Control-Allow-Origin on every reply and OPTIONS
                                preflights answered ("*" or "https://host"); NULL: no CORS */
    int delay_ms;            /* tests only: each prediction waits this long before answering */
} ServeConfig;

typedef struct Server Server;

/* Loopback, port 8080, one thread per core, 8 MiB bodies, 15 s timeout, log to stdout. */
void serve_config_defaults(ServeConfig *cfg);

/* Load the model (cfg.threads copies), bind and start serving on background
 * threads. Returns the bound port and *out, or -1 with a one-line message in
 * dg_errmsg() (model unreadable, address unknown, port in use). */
int serve_start(Server **out, const ServeConfig *cfg);

/* Stop accepting, finish the requests in flight, free everything. */
void serve_stop(Server *s);

#endif
