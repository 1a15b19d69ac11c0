/* spec.c — the plain-text architecture format: one layer per line,
 * `keyword key=value ...`, '#' starts a comment. Builds Model.layers and
 * checks every shape as it goes; errors are "origin:line: problem".
 *
 * Graphs (model.h has the full description):
 *   name=N          on any layer line names its output;
 *   inputs=A,B,...  on any layer line says what it reads: names, `prev`
 *                   (the layer on the line before: the default) or `input`
 *                   (the model input); add and concat take two or more;
 *   stn ... end     a spatial transformer block: the lines between are its
 *                   localisation net (reading the stn's input), ending in
 *                   `linear out=6`; the stn layer itself is placed at `end`
 *                   (with the stn line's own arguments: align_corners=).
 * Layers are numbered in the order they are created, which puts every
 * input before the layers reading it. A spec without name=/inputs=/stn is
 * a plain sequence and numbers its layers exactly as before.
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

/* The error of a line: "origin:line: " + the message already set. */
static int line_error(const char *origin, int lineno, const char *what) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", dg_errmsg());
    if (what)
        return dg_set_error("%s:%d: %s: %s", origin, lineno, what, msg);
    return dg_set_error("%s:%d: %s", origin, lineno, msg);
}

/* Remove argument `key` from a (the graph arguments are not the layer's
 * business); copies its value to val. Returns 1 if it was there. */
static int take_arg(SpecArgs *a, const char *key, char *val, size_t len) {
    for (int i = 0; i < a->n; i++)
        if (strcmp(a->key[i], key) == 0) {
            snprintf(val, len, "%s", a->val[i]);
            for (int j = i + 1; j < a->n; j++) {
                memcpy(a->key[j - 1], a->key[j], sizeof a->key[0]);
                memcpy(a->val[j - 1], a->val[j], sizeof a->val[0]);
            }
            a->n--;
            return 1;
        }
    return 0;
}

/* The layer called `name`, prev, or the model input: its id, or -2 with an error. */
static int resolve_input(const Model *m, const char *name, int prev) {
    if (strcmp(name, "prev") == 0) return prev;
    if (strcmp(name, "input") == 0) return LAYER_INPUT_IMAGE;
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, name) == 0) return i;
    dg_set_error("inputs: no earlier layer is named '%s' (name a layer with name=%s)", name, name);
    return -2;
}

/* Parse "a,b,c" into ids; -1 with an error. */
static int parse_inputs(const Model *m, const char *list, int prev, int *ids, int *n) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", list);
    *n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == LAYER_MAX_INPUTS) return dg_set_error("inputs: at most %d", LAYER_MAX_INPUTS);
        int id = resolve_input(m, tok, prev);
        if (id == -2) return -1;
        ids[(*n)++] = id;
    }
    if (*n == 0) return dg_set_error("inputs: empty list");
    return 0;
}

static int check_name(const Model *m, const char *name) {
    if (!*name || strlen(name) >= sizeof m->layers[0].name)
        return dg_set_error("name='%s' must be 1..%zu characters", name, sizeof m->layers[0].name - 1);
    for (const char *c = name; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-')
            return dg_set_error("name='%s': use letters, digits, '_' and '-'", name);
    if (strcmp(name, "prev") == 0 || strcmp(name, "input") == 0)
        return dg_set_error("name='%s' is reserved", name);
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, name) == 0)
            return dg_set_error("name='%s' is already layer %d's (line %d)", name, i, m->layers[i].line);
    return 0;
}

/* Sizes a spec may ask for, checked layer by layer before anything is
 * allocated (a few bytes of spec must not make digits allocate gigabytes).
 * cnn-bn has 0.87 M parameters and about 0.3 M floats of activations per
 * image (twobranch, the largest zoo model, 26 M parameters): the bounds
 * leave room above both. */
#define SPEC_MAX_SAMPLE_FLOATS (1ull << 25) /* activations + scratch per image (128 MiB) */
#define SPEC_MAX_WORKSPACE (1ull << 26)     /* im2col floats per thread (256 MiB) */

typedef struct {
    size_t total_floats;  /* parameters + buffers so far */
    size_t sample_floats; /* activations + scratch per image so far */
    size_t max_floats;    /* what the model file can hold (model_load), else MODEL_MAX_PARAMS */
    const char *file;     /* the model file, for the truncation message (may be NULL) */
} SpecBudget;

/* Account for the layer just appended; -1 with "origin:line: ..." when a
 * bound is passed. The order keeps every product in range: shapes are
 * bounded before anything multiplies them. */
static int check_budget(SpecBudget *b, const Model *m, const char *origin) {
    const Layer *l = &m->layers[m->n_layers - 1];
    const char *keyword = l->kind->name;
    const int lineno = l->line;
    if (b->sample_floats == 0) b->sample_floats = shape_size(m->input_shape);
    size_t out_floats = shape_size(l->out);
    if (out_floats > SPEC_MAX_SAMPLE_FLOATS)
        return dg_set_error("%s:%d: %s: output %dx%dx%d is more than %llu floats per image", origin, lineno,
                            keyword, l->out.c, l->out.h, l->out.w, SPEC_MAX_SAMPLE_FLOATS);
    b->sample_floats += 2 * out_floats + l->n_scratch + l->n_scratch_fixed;
    b->total_floats += l->n_param + l->n_buffer;
    if (b->sample_floats > SPEC_MAX_SAMPLE_FLOATS || l->n_workspace > SPEC_MAX_WORKSPACE)
        return dg_set_error("%s:%d: %s: the network needs more than %llu floats of activations per image", origin,
                            lineno, keyword, SPEC_MAX_SAMPLE_FLOATS);
    if (b->total_floats > MODEL_MAX_PARAMS)
        return dg_set_error("%s:%d: %s: the network has more than %llu parameters", origin, lineno, keyword,
                            (unsigned long long)MODEL_MAX_PARAMS);
    if (b->total_floats > b->max_floats) /* model_load: the file cannot hold the weights the spec asks for */
        return dg_set_error("%s: truncated or corrupted model file: its spec needs at least %zu floats of "
                            "weights (line %d), the file holds only %zu", b->file ? b->file : origin,
                            b->total_floats, lineno, b->max_floats);
    return 0;
}

/* Append a layer of `kind` reading inputs ids[0..n_in), configured from a,
 * and plan it. -1 with the error set (without "origin:line"). */
static int append_layer(Model *m, const LayerKind *kind, LayerType type, int lineno,
                        const char *name, const int *ids, int n_in, SpecArgs *a) {
    if (m->n_layers == MODEL_MAX_LAYERS) return dg_set_error("too many layers (at most %d)", MODEL_MAX_LAYERS);
    int lo, hi;
    layer_input_range(type, &lo, &hi);
    if (n_in < lo || n_in > hi) {
        if (lo == hi) return dg_set_error("%s takes %d input%s, got %d", kind->name, lo, lo > 1 ? "s" : "", n_in);
        return dg_set_error("%s takes %d to %d inputs, got %d", kind->name, lo, hi, n_in);
    }
    Layer *l = &m->layers[m->n_layers];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->type = type;
    l->index = m->n_layers;
    l->line = lineno;
    snprintf(l->name, sizeof l->name, "%s", name ? name : "");
    l->n_inputs = n_in;
    for (int k = 0; k < n_in; k++) {
        l->input_ids[k] = ids[k];
        l->ins[k] = ids[k] == LAYER_INPUT_IMAGE ? m->input_shape : m->layers[ids[k]].out;
    }
    l->in = l->ins[0];
    for (int i = 0; i < a->n; i++)
        if (!synopsis_allows(kind->synopsis, a->key[i]))
            return dg_set_error("%s: unknown argument '%s' (usage: %s)", kind->name, a->key[i], kind->synopsis);
    if (kind->configure(l, a) < 0 || kind->plan(l) < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", dg_errmsg());
        return dg_set_error("%s: %s", kind->name, msg);
    }
    if (l->out.c < 1 || l->out.h < 1 || l->out.w < 1)
        return dg_set_error("%s: output shape %dx%dx%d is empty", kind->name, l->out.c, l->out.h, l->out.w);
    m->n_layers++;
    return 0;
}

int model_build(Model *m, const char *spec_text, const char *origin) {
    return model_build_limited(m, spec_text, origin, MODEL_MAX_PARAMS, NULL);
}

/* The parser between lines: what `prev` means next, the line of the last
 * layer, and the stn block still open (its input, line, first layer, name
 * and the stn line's own arguments, applied at `end`). */
typedef struct {
    Model *m;
    const char *origin;
    SpecBudget budget;
    int prev;
    int seen_layer, last_line;
    struct {
        int open, src, line, first;
        char name[32];
        SpecArgs args;
    } stn;
} SpecParser;

/* `input CxHxW`: the model input's shape, before any layer. */
static int parse_input_line(SpecParser *ps, int lineno, const SpecArgs *args) {
    if (ps->seen_layer)
        return dg_set_error("%s:%d: 'input' must come before the first layer", ps->origin, lineno);
    if (args->n != 1 || strcmp(args->key[0], "shape") != 0 ||
        parse_input_shape(args->val[0], &ps->m->input_shape) < 0)
        return dg_set_error("%s:%d: input shape should be CxHxW, e.g. 'input 1x28x28'", ps->origin, lineno);
    return 0;
}

/* `stn [align_corners=] [inputs=X] [name=N]`: opens a block whose lines are
 * the localisation net, reading the stn's input. */
static int open_stn(SpecParser *ps, int lineno, const char *name, const int *ids, int n_in,
                    const SpecArgs *args) {
    if (ps->stn.open)
        return dg_set_error("%s:%d: stn: blocks do not nest (the one on line %d is still open)", ps->origin,
                            lineno, ps->stn.line);
    for (int i = 0; i < args->n; i++)
        if (strcmp(args->key[i], "align_corners") != 0)
            return dg_set_error("%s:%d: stn: unknown argument '%s' (usage: stn [align_corners=0|1] "
                                "[inputs=X] [name=N], the localisation net, then 'end')", ps->origin, lineno,
                                args->key[i]);
    ps->stn.args = *args;
    if (n_in != 1)
        return dg_set_error("%s:%d: stn: takes one input (the image to transform)", ps->origin, lineno);
    ps->stn.open = 1, ps->stn.src = ids[0], ps->stn.line = lineno, ps->stn.first = ps->m->n_layers;
    snprintf(ps->stn.name, sizeof ps->stn.name, "%s", name);
    ps->prev = ps->stn.src;
    ps->seen_layer = 1;
    return 0;
}

/* `end`: closes the open stn block by placing the stn layer, which reads
 * the block's input and the localisation net's 6 outputs. has_args: the
 * line carried arguments (end takes none). */
static int close_stn(SpecParser *ps, int lineno, int has_args) {
    Model *m = ps->m;
    if (!ps->stn.open) return dg_set_error("%s:%d: 'end' without an open block (blocks: stn)", ps->origin, lineno);
    if (has_args)
        return dg_set_error("%s:%d: end takes no arguments (put name= on the stn line)", ps->origin, lineno);
    Layer *loc = m->n_layers > ps->stn.first ? &m->layers[m->n_layers - 1] : NULL;
    if (!loc || loc->type != LAYER_LINEAR || loc->out_features != 6 || !loc->bias)
        return dg_set_error("%s:%d: stn: the localisation net (lines %d-%d) must end with "
                            "'linear out=6' (the 2x3 affine transform)", ps->origin, lineno, ps->stn.line + 1,
                            lineno - 1);
    if (ps->stn.name[0] && check_name(m, ps->stn.name) < 0) /* taken inside the block? */
        return line_error(ps->origin, ps->stn.line, "stn");
    loc->init_affine_identity = 1;
    int stn_ids[2] = {ps->stn.src, m->n_layers - 1};
    if (append_layer(m, layer_kinds[LAYER_STN], LAYER_STN, ps->stn.line, ps->stn.name, stn_ids, 2,
                     &ps->stn.args) < 0)
        return line_error(ps->origin, ps->stn.line, NULL);
    if (check_budget(&ps->budget, m, ps->origin) < 0) return -1;
    ps->stn.open = 0;
    ps->prev = m->n_layers - 1;
    ps->last_line = lineno;
    return 0;
}

/* A layer line: the layer kind's own arguments in args. */
static int add_layer_line(SpecParser *ps, int lineno, const char *keyword, const char *name, const int *ids,
                          int n_in, SpecArgs *args) {
    LayerType type;
    const LayerKind *kind = layer_kind_find(keyword, &type);
    if (!kind || type == LAYER_STN) {
        char known[256];
        known_layers(known, sizeof known);
        return dg_set_error("%s:%d: unknown layer '%s' (known: %s, end)", ps->origin, lineno, keyword, known);
    }
    if (append_layer(ps->m, kind, type, lineno, name, ids, n_in, args) < 0)
        return line_error(ps->origin, lineno, NULL);
    if (check_budget(&ps->budget, ps->m, ps->origin) < 0) return -1;
    ps->prev = ps->m->n_layers - 1;
    ps->seen_layer = 1;
    ps->last_line = lineno;
    return 0;
}

/* One line of the spec (comments and blank lines do nothing). */
static int parse_line(SpecParser *ps, char *line, int lineno) {
    char keyword[64];
    SpecArgs args;
    int r = tokenize(line, keyword, sizeof keyword, &args);
    if (r < 0) return line_error(ps->origin, lineno, NULL);
    if (r == 0) return 0;
    if (strcmp(keyword, "input") == 0) return parse_input_line(ps, lineno, &args);
    /* the graph arguments, common to every line */
    char name[64] = "", inputs[64] = "";
    int has_name = take_arg(&args, "name", name, sizeof name);
    int has_inputs = take_arg(&args, "inputs", inputs, sizeof inputs);
    if (has_name && check_name(ps->m, name) < 0) return line_error(ps->origin, lineno, keyword);
    int ids[LAYER_MAX_INPUTS], n_in = 1;
    ids[0] = ps->prev;
    if (has_inputs && parse_inputs(ps->m, inputs, ps->prev, ids, &n_in) < 0)
        return line_error(ps->origin, lineno, keyword);
    if (strcmp(keyword, "stn") == 0) return open_stn(ps, lineno, name, ids, n_in, &args);
    if (strcmp(keyword, "end") == 0) return close_stn(ps, lineno, args.n || has_name || has_inputs);
    return add_layer_line(ps, lineno, keyword, name, ids, n_in, &args);
}

/* Every line of spec_text, then the checks that need the whole spec. */
static int parse_spec(SpecParser *ps, const char *spec_text) {
    char line[1024];
    int lineno = 0;
    for (const char *p = spec_text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        lineno++;
        if (len >= sizeof line) return dg_set_error("%s:%d: line is too long", ps->origin, lineno);
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (nl ? 1 : 0);
        if (parse_line(ps, line, lineno) < 0) return -1;
    }
    if (ps->stn.open) return dg_set_error("%s:%d: stn: block has no 'end'", ps->origin, ps->stn.line);
    if (ps->m->n_layers == 0) return dg_set_error("%s: no layers", ps->origin);
    return 0;
}

/* Every output but the last must be read by someone: a dangling branch is
 * a spec mistake (and would get no gradient). */
static int check_outputs_used(const Model *m, const char *origin) {
    for (int i = 0; i < m->n_layers - 1; i++) {
        int used = 0;
        for (int j = i + 1; j < m->n_layers && !used; j++)
            for (int k = 0; k < m->layers[j].n_inputs; k++) used |= m->layers[j].input_ids[k] == i;
        if (!used)
            return dg_set_error("%s:%d: the output of this %s layer is never used (only the last layer "
                                "may be unread)", origin, m->layers[i].line, m->layers[i].kind->name);
    }
    return 0;
}

/* The last layer gives the 10 logits. */
static int check_logits(const Model *m, const char *origin, int last_line) {
    Shape cur = m->layers[m->n_layers - 1].out;
    if (shape_size(cur) != MODEL_NUM_CLASSES)
        return dg_set_error("%s:%d: the last layer gives %dx%dx%d outputs, expected %d logits", origin, last_line,
                            cur.c, cur.h, cur.w, MODEL_NUM_CLASSES);
    return 0;
}

/* Parameter, gradient and buffer blocks: one allocation per family, each
 * layer pointing at its slice. */
static void allocate_parameters(Model *m) {
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
}

/* The spec's name: origin's file name without a .spec ending. */
static void set_spec_name(Model *m, const char *origin) {
    const char *slash = strrchr(origin, '/');
    snprintf(m->spec_name, sizeof m->spec_name, "%s", slash ? slash + 1 : origin);
    char *dot = strstr(m->spec_name, ".spec");
    if (dot) *dot = '\0';
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
    SpecParser ps = {.m = m, .origin = origin, .budget = {0, 0, max_floats, file}, .prev = LAYER_INPUT_IMAGE};
    if (parse_spec(&ps, spec_text) < 0 || check_outputs_used(m, origin) < 0 ||
        check_logits(m, origin, ps.last_line) < 0) {
        model_free(m);
        return -1;
    }
    allocate_parameters(m);
    set_spec_name(m, origin);
    return 0;
}
