/* spec.c — the plain-text architecture format: one layer per line,
 * `keyword key=value ...`, '#' starts a comment. Builds Model.layers and
 * checks every shape as it goes; errors are "origin:line: problem".
 * Leaves out: named layers and multi-input graphs (added with residuals).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "model/model.h"

/* Split one line into a keyword and key=value pairs. Returns 0 on an empty
 * line, 1 on a layer line, -1 on a syntax error. */
static int tokenize(char *line, char *keyword, size_t kwlen, SpecArgs *a) {
    char *hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char *save = NULL;
    char *tok = strtok_r(line, " \t\r", &save);
    if (!tok) return 0;
    if (strlen(tok) >= kwlen) return dg_set_error("keyword '%.40s...' is too long", tok);
    strcpy(keyword, tok);
    memset(a, 0, sizeof *a);
    while ((tok = strtok_r(NULL, " \t\r", &save))) {
        char *eq = strchr(tok, '=');
        if (!eq) {
            /* the only positional argument: `input 1x28x28` */
            if (strcmp(keyword, "input") == 0 && a->n == 0) {
                strcpy(a->key[0], "shape");
                snprintf(a->val[0], sizeof a->val[0], "%s", tok);
                a->n = 1;
                continue;
            }
            return dg_set_error("'%s' is not of the form key=value", tok);
        }
        if (a->n == SPEC_MAX_ARGS) return dg_set_error("too many arguments (at most %d)", SPEC_MAX_ARGS);
        *eq = '\0';
        if (strlen(tok) == 0 || strlen(tok) >= sizeof a->key[0] || strlen(eq + 1) >= sizeof a->val[0])
            return dg_set_error("bad argument '%s=%s'", tok, eq + 1);
        for (int i = 0; i < a->n; i++)
            if (strcmp(a->key[i], tok) == 0) return dg_set_error("argument '%s' given twice", tok);
        strcpy(a->key[a->n], tok);
        strcpy(a->val[a->n], eq + 1);
        a->n++;
    }
    return 1;
}

static int parse_input_shape(const char *s, Shape *shape) {
    int c, h, w;
    char tail;
    if (sscanf(s, "%dx%dx%d%c", &c, &h, &w, &tail) != 3 || c < 1 || h < 1 || w < 1 || c > 64 ||
        h > 1024 || w > 1024)
        return dg_set_error("input shape '%s' should be CxHxW, e.g. 1x28x28", s);
    *shape = (Shape){c, h, w};
    return 0;
}

/* Is `key` one of the arguments named in the kind's synopsis
 * ("conv2d out=K kernel=R [stride=1]" allows out, kernel, stride)? */
static int synopsis_allows(const char *synopsis, const char *key) {
    size_t klen = strlen(key);
    for (const char *p = strchr(synopsis, ' '); p && *p; p++) {
        if ((p[-1] == ' ' || p[-1] == '[') && strncmp(p, key, klen) == 0 && p[klen] == '=') return 1;
    }
    return 0;
}

static void known_layers(char *buf, size_t len) {
    buf[0] = '\0';
    for (int t = 0; t < LAYER_KIND_COUNT; t++) {
        strncat(buf, layer_kinds[t]->name, len - strlen(buf) - 1);
        if (t + 1 < LAYER_KIND_COUNT) strncat(buf, ", ", len - strlen(buf) - 1);
    }
}

/* Sizes a spec may ask for, checked layer by layer before anything is
 * allocated (a few bytes of spec must not make digits allocate gigabytes).
 * cnn-bn, the largest zoo model, has 0.83 M parameters and about 0.3 M
 * floats of activations per image: the bounds leave two orders of magnitude. */
#define SPEC_MAX_SAMPLE_FLOATS (1ull << 25) /* activations + scratch per image (128 MiB) */
#define SPEC_MAX_WORKSPACE (1ull << 26)     /* im2col floats per thread (256 MiB) */

int model_build(Model *m, const char *spec_text, const char *origin) {
    return model_build_limited(m, spec_text, origin, MODEL_MAX_PARAMS, NULL);
}

int model_build_limited(Model *m, const char *spec_text, const char *origin, size_t max_floats,
                        const char *file) {
    memset(m, 0, sizeof *m);
    m->spec_text = strdup(spec_text);
    DG_ASSERT(m->spec_text);
    m->input_shape = (Shape){1, 28, 28};
    m->layers = dg_xcalloc(MODEL_MAX_LAYERS, sizeof(Layer));
    m->norm_mean = 0.0f;
    m->norm_std = 1.0f;
    m->nthreads = 1;

    char *text = strdup(spec_text);
    DG_ASSERT(text);
    char line_buf[1024];
    int lineno = 0;
    const char *p = text;
    Shape cur = m->input_shape;
    int seen_layer = 0, last_line = 0;
    size_t total_floats = 0, sample_floats = shape_size(cur);
    char keyword[64];
    SpecArgs args;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        lineno++;
        if (len >= sizeof line_buf) {
            dg_set_error("%s:%d: line is too long", origin, lineno);
            goto fail;
        }
        memcpy(line_buf, p, len);
        line_buf[len] = '\0';
        p += len + (nl ? 1 : 0);

        int r = tokenize(line_buf, keyword, sizeof keyword, &args);
        if (r < 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", dg_errmsg());
            dg_set_error("%s:%d: %s", origin, lineno, msg);
            goto fail;
        }
        if (r == 0) continue;
        if (strcmp(keyword, "input") == 0) {
            if (seen_layer) {
                dg_set_error("%s:%d: 'input' must come before the first layer", origin, lineno);
                goto fail;
            }
            if (args.n != 1 || strcmp(args.key[0], "shape") != 0 ||
                parse_input_shape(args.val[0], &m->input_shape) < 0) {
                dg_set_error("%s:%d: input shape should be CxHxW, e.g. 'input 1x28x28'", origin, lineno);
                goto fail;
            }
            cur = m->input_shape;
            continue;
        }
        LayerType type;
        const LayerKind *kind = layer_kind_find(keyword, &type);
        if (!kind) {
            char known[256];
            known_layers(known, sizeof known);
            dg_set_error("%s:%d: unknown layer '%s' (known: %s)", origin, lineno, keyword, known);
            goto fail;
        }
        if (m->n_layers == MODEL_MAX_LAYERS) {
            dg_set_error("%s:%d: too many layers (at most %d)", origin, lineno, MODEL_MAX_LAYERS);
            goto fail;
        }
        Layer *l = &m->layers[m->n_layers];
        l->kind = kind;
        l->type = type;
        l->index = m->n_layers;
        l->line = lineno;
        l->in = cur;
        for (int i = 0; i < args.n; i++)
            if (!synopsis_allows(kind->synopsis, args.key[i])) {
                dg_set_error("%s:%d: %s: unknown argument '%s' (usage: %s)", origin, lineno,
                             keyword, args.key[i], kind->synopsis);
                goto fail;
            }
        if (kind->configure(l, &args) < 0 || kind->plan(l) < 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", dg_errmsg());
            dg_set_error("%s:%d: %s: %s", origin, lineno, keyword, msg);
            goto fail;
        }
        if (l->out.c < 1 || l->out.h < 1 || l->out.w < 1) {
            dg_set_error("%s:%d: %s: output shape %dx%dx%d is empty", origin, lineno, keyword,
                         l->out.c, l->out.h, l->out.w);
            goto fail;
        }
        /* Bounds, in an order that keeps every product in range: the input
         * and output shapes are bounded before anything multiplies them. */
        size_t out_floats = shape_size(l->out);
        if (out_floats > SPEC_MAX_SAMPLE_FLOATS) {
            dg_set_error("%s:%d: %s: output %dx%dx%d is more than %llu floats per image", origin,
                         lineno, keyword, l->out.c, l->out.h, l->out.w, SPEC_MAX_SAMPLE_FLOATS);
            goto fail;
        }
        sample_floats += 2 * out_floats + l->n_scratch + l->n_scratch_fixed;
        total_floats += l->n_param + l->n_buffer;
        if (sample_floats > SPEC_MAX_SAMPLE_FLOATS || l->n_workspace > SPEC_MAX_WORKSPACE) {
            dg_set_error("%s:%d: %s: the network needs more than %llu floats of activations per "
                         "image", origin, lineno, keyword, SPEC_MAX_SAMPLE_FLOATS);
            goto fail;
        }
        if (total_floats > MODEL_MAX_PARAMS) {
            dg_set_error("%s:%d: %s: the network has more than %llu parameters", origin, lineno,
                         keyword, (unsigned long long)MODEL_MAX_PARAMS);
            goto fail;
        }
        if (total_floats > max_floats) {
            /* model_load: the file cannot hold the weights the spec asks for */
            dg_set_error("%s: truncated or corrupted model file: its spec needs at least %zu "
                         "floats of weights (line %d), the file holds only %zu", file ? file : origin,
                         total_floats, lineno, max_floats);
            goto fail;
        }
        cur = l->out;
        m->n_layers++;
        seen_layer = 1;
        last_line = lineno;
    }
    if (m->n_layers == 0) {
        dg_set_error("%s: no layers", origin);
        goto fail;
    }
    if (shape_size(cur) != MODEL_NUM_CLASSES) {
        dg_set_error("%s:%d: the last layer gives %dx%dx%d outputs, expected %d logits", origin,
                     last_line, cur.c, cur.h, cur.w, MODEL_NUM_CLASSES);
        goto fail;
    }
    free(text);

    /* parameter blocks: one allocation per family */
    for (int i = 0; i < m->n_layers; i++) {
        m->n_param += m->layers[i].n_param;
        m->n_buffer += m->layers[i].n_buffer;
    }
    m->params = dg_xcalloc(m->n_param, sizeof(float));
    m->grads = dg_xcalloc(m->n_param, sizeof(float));
    m->buffers = dg_xcalloc(m->n_buffer, sizeof(float));
    size_t po = 0, bo = 0;
    for (int i = 0; i < m->n_layers; i++) {
        Layer *l = &m->layers[i];
        l->param = m->params + po;
        l->dparam = m->grads + po;
        l->buffer = m->buffers + bo;
        po += l->n_param;
        bo += l->n_buffer;
    }
    const char *slash = strrchr(origin, '/');
    snprintf(m->spec_name, sizeof m->spec_name, "%s", slash ? slash + 1 : origin);
    char *dot = strstr(m->spec_name, ".spec");
    if (dot) *dot = '\0';
    return 0;
fail:
    free(text);
    model_free(m);
    return -1;
}
