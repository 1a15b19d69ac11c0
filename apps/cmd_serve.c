/* cmd_serve.c — `digits serve`: the web app and HTTP API (src/serve) until
 * SIGINT or SIGTERM. Prints where it listens on stderr (the port too when
 * --port 0 picked one) and one access-log line per request on stdout. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "digits_internal.h"
#include "options.h"
#include "serve/serve.h"

static const char *CMD = "serve";

static void help(void) {
    CliCommon co = cli_common_defaults();
    printf("usage: digits serve [--model FILE|default|best] [flags]\n\n");
    cli_common_help(CLI_MODEL, &co);
    printf("  --host ADDR       IP address to bind (0.0.0.0: every interface) [127.0.0.1]\n"
           "  --port N          TCP port (0: any free port, printed)          [8080]\n"
           "  --threads N       connection threads = model copies (0: cores)   [0]\n"
           "  --max-body BYTES  largest request body                          [8388608]\n"
           "  --timeout S       close connections idle this long              [15]\n"
           "  --quiet           no access log\n"
           "  --cors ORIGIN     let pages from ORIGIN (https://host[:port], or *) call\n"
           "                    the API: CORS headers and OPTIONS preflights     [off]\n\n"
           "GET /            the page: draw or upload a digit\n"
           "POST /api/predict  an image (PNG, JPEG, BMP, PGM; raw or multipart) or\n"
           "                 JSON {\"pixels\": [784 numbers 0..255]} -> digit, probabilities\n"
           "GET /api/model   the model's architecture, parameters, training metrics\n"
           "GET /healthz     liveness\n\n"
           "Examples:\n"
           "  digits serve                                  # the default model: http://127.0.0.1:8080/\n"
           "  digits serve --model best --host 0.0.0.0 --port 8000 --cors '*'\n"
           "  curl -F image=@digit.png http://127.0.0.1:8080/api/predict\n");
}

/* --cors ORIGIN as a browser sends it in its Origin header: "*", or
 * scheme://host[:port] with no path (a trailing "/" never matches) and
 * nothing that could break the header line. Usage error otherwise. */
static const char *cors_origin(const char *s) {
    if (strcmp(s, "*") == 0) return s;
    const char *host = strncmp(s, "http://", 7) == 0 ? s + 7 : strncmp(s, "https://", 8) == 0 ? s + 8 : NULL;
    int ok = host && *host;
    for (const char *p = host; ok && *p; p++) ok = *p > 0x20 && *p < 0x7f && *p != '/' && *p != ',';
    if (!ok) cli_usage_error(CMD, "--cors: '%s' is not an origin (https://example.com, http://localhost:3000 or *)", s);
    return s;
}

int cmd_serve(int argc, char **argv) {
    ServeConfig cfg;
    serve_config_defaults(&cfg);
    CliCommon co = cli_common_defaults();
    enum { O_HOST = 256, O_PORT, O_THREADS, O_MAX_BODY, O_TIMEOUT, O_QUIET, O_HELP, O_CORS, O_DELAY };
    static const struct option own[] = {
        {"host", 1, 0, O_HOST},       {"port", 1, 0, O_PORT},
        {"threads", 1, 0, O_THREADS},   {"max-body", 1, 0, O_MAX_BODY}, {"timeout", 1, 0, O_TIMEOUT},
        {"quiet", 0, 0, O_QUIET},       {"help", 0, 0, O_HELP},       {"cors", 1, 0, O_CORS},
        /* --delay-ms MS, not in --help: for tests only (tests/browser), each
         * prediction answers MS milliseconds late, like a slow server */
        {"delay-ms", 1, 0, O_DELAY},    {0, 0, 0, 0}};
    CliOptions ol;
    cli_options(&ol, own, CLI_MODEL);
    int c;
    while ((c = cli_next(&ol, CMD, argc, argv, &co)) != -1) {
        switch (c) {
        case O_HOST: cfg.host = optarg; break;
        case O_PORT: cfg.port = cli_int(CMD, "--port", optarg, 0, 65535); break;
        case O_THREADS: cfg.threads = cli_int(CMD, "--threads", optarg, 0, 256); break;
        case O_MAX_BODY: cfg.max_body = (size_t)cli_int(CMD, "--max-body", optarg, 1024, 1 << 30); break;
        case O_TIMEOUT: cfg.timeout_s = cli_int(CMD, "--timeout", optarg, 1, 3600); break;
        case O_QUIET: cfg.log = NULL; break;
        case O_HELP: help(); return 0;
        case O_CORS: cfg.cors_origin = cors_origin(optarg); break;
        case O_DELAY: cfg.delay_ms = cli_int(CMD, "--delay-ms", optarg, 0, 60000); break;
        default: cli_bad_flag(CMD, argv[optind - 1], ol.opts);
        }
    }
    if (optind < argc) cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    char model_buf[PATH_MAX];
    cfg.model_path = cli_model_path(CMD, co.model, model_buf, sizeof model_buf);

    /* Block the stop signals before the server's threads exist (they
     * inherit the mask), then wait for one here. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    Server *srv;
    int port = serve_start(&srv, &cfg);
    if (port < 0) cli_fail(CMD, "%s", dg_errmsg());
    const char *host = cfg.host;
    int v6 = strchr(host, ':') != NULL;
    fprintf(stderr, "digits serve: listening on http://%s%s%s:%d/ (model %s)\n", v6 ? "[" : "", host,
            v6 ? "]" : "", port, cfg.model_path);
    int sig;
    sigwait(&stop, &sig);
    fprintf(stderr, "digits serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    serve_stop(srv);
    return 0;
}
