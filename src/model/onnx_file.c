/* onnx_file.c — the checked ONNX reader and the writer.
 *
 * protobuf-c (code generated from third_party/onnx/onnx.proto) decodes the
 * wire format: it refuses truncated messages, wrong wire types and lengths
 * past the end, and every allocation it makes is bounded by the input size.
 * Then every field digits relies on is validated before anyone reads it:
 *   - IR version 3..10 and an opset for the default domain, 7..21;
 *   - tensors: float32 or int64, at most 8 dims, each >= 0, at most
 *     ONNX_MAX_ELEMENTS elements (the product is checked before anything is
 *     sized from it), data held inline (raw_data or the typed field) with
 *     exactly as many values as the shape says;
 *   - names: every node input is a graph input, an initializer or an output
 *     of an EARLIER node, every value is defined once, every graph output is
 *     defined — so a graph with a cycle (or out of topological order, which
 *     ONNX forbids) is refused, and readers may walk the nodes in order;
 *   - nodes: an op type, the default domain, no subgraph attributes.
 * Left out on purpose: external data files, sparse tensors, subgraphs
 * (If/Loop), other element types, model-local functions — none of them
 * occurs in an image classifier digits can run.
 */
#include "model/onnx_internal.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/util.h"

/* ==== a set of value names ================================================ */

/* Open-addressing hash set of borrowed strings (the model owns them). */
typedef struct {
    const char **slot;
    size_t cap; /* a power of two, more than twice the most names added */
} NameSet;

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Room for n names (n bounded by the model's counts, themselves bounded by
 * the input size). */
static void nameset_init(NameSet *s, size_t n) {
    s->cap = 16;
    while (s->cap < 2 * n + 2) s->cap <<= 1;
    s->slot = dg_xcalloc(s->cap, sizeof *s->slot);
}

/* 1 if name is in the set. */
static int nameset_has(const NameSet *s, const char *name) {
    for (size_t i = name_hash(name) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slot[i]) return 0;
        if (strcmp(s->slot[i], name) == 0) return 1;
    }
}

/* Add name; 0, or -1 if it was there already. */
static int nameset_add(NameSet *s, const char *name) {
    size_t i = name_hash(name) & (s->cap - 1);
    for (; s->slot[i]; i = (i + 1) & (s->cap - 1))
        if (strcmp(s->slot[i], name) == 0) return -1;
    s->slot[i] = name;
    return 0;
}

/* ==== tensors ============================================================== */

size_t onnx_tensor_count(const Onnx__TensorProto *t) {
    size_t n = 1;
    for (size_t i = 0; i < t->n_dims; i++) n *= (size_t)t->dims[i];
    return n;
}

/* Bytes per element of the two element types read. */
static size_t elem_size(int32_t type) { return type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? 8 : 4; }

/* Validate one tensor (an initializer or a Constant's value); `what` names
 * it in messages. */
static int check_tensor(const Onnx__TensorProto *t, const char *origin, const char *what) {
    char nb[80];
    const char *name = dg_printable(t->name ? t->name : "", nb, sizeof nb);
    if (!t->has_data_type || (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
                              t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64))
        return dg_set_error("%s: %s '%s': element type %d is not supported (float32 or int64)", origin,
                            what, name, t->has_data_type ? (int)t->data_type : 0);
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return dg_set_error("%s: %s '%s': external data files are not supported", origin, what, name);
    if (t->segment) return dg_set_error("%s: %s '%s': segmented tensors are not supported", origin, what, name);
    if (t->n_dims > 8) return dg_set_error("%s: %s '%s': %zu dimensions (at most 8)", origin, what, name, t->n_dims);
    uint64_t count = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0)
            return dg_set_error("%s: %s '%s': dimension %zu is %" PRId64, origin, what, name, i, t->dims[i]);
        if (t->dims[i] > (int64_t)ONNX_MAX_ELEMENTS || (count *= (uint64_t)t->dims[i]) > ONNX_MAX_ELEMENTS) {
            /* the product for the message, saturating */
            long double full = 1;
            for (size_t k = 0; k < t->n_dims; k++) full *= (long double)t->dims[k];
            return dg_set_error("%s: %s '%s': %.0Lf elements (at most %zu)", origin, what, name, full,
                                (size_t)ONNX_MAX_ELEMENTS);
        }
    }
    size_t have;
    if (t->has_raw_data) {
        if (t->raw_data.len % elem_size(t->data_type))
            return dg_set_error("%s: %s '%s': raw data of %zu bytes is not whole elements", origin, what, name,
                                t->raw_data.len);
        have = t->raw_data.len / elem_size(t->data_type);
    } else {
        have = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? t->n_float_data : t->n_int64_data;
    }
    if (have != count)
        return dg_set_error("%s: %s '%s': data holds %zu values, its shape needs %" PRIu64, origin, what, name,
                            have, count);
    return 0;
}

void onnx_tensor_floats(const Onnx__TensorProto *t, float *dst) {
    size_t n = onnx_tensor_count(t);
    if (n == 0) return;
    if (t->has_raw_data) memcpy(dst, t->raw_data.data, n * sizeof(float)); /* little-endian, as x86 */
    else memcpy(dst, t->float_data, n * sizeof(float));
}

void onnx_tensor_int64s(const Onnx__TensorProto *t, int64_t *dst) {
    size_t n = onnx_tensor_count(t);
    if (n == 0) return;
    if (t->has_raw_data) memcpy(dst, t->raw_data.data, n * sizeof(int64_t));
    else memcpy(dst, t->int64_data, n * sizeof(int64_t));
}

/* ==== the graph ============================================================ */

/* A node's attributes: named, no subgraphs, tensors validated. */
static int check_attributes(const Onnx__NodeProto *nd, const char *origin, const char *node) {
    for (size_t a = 0; a < nd->n_attribute; a++) {
        const Onnx__AttributeProto *at = nd->attribute[a];
        if (!at->name || !*at->name) return dg_set_error("%s: node '%s': an attribute without a name", origin, node);
        char ab[64];
        if (at->g || at->n_graphs)
            return dg_set_error("%s: node '%s': attribute '%s' holds a subgraph (not supported)", origin, node,
                                dg_printable(at->name, ab, sizeof ab));
        if (at->sparse_tensor || at->n_sparse_tensors || at->n_tensors)
            return dg_set_error("%s: node '%s': attribute '%s': tensor lists and sparse tensors are not supported",
                                origin, node, dg_printable(at->name, ab, sizeof ab));
        if (at->t && check_tensor(at->t, origin, "constant") < 0) return -1;
    }
    return 0;
}

/* Nodes in order: every input defined before, every output new. */
static int check_nodes(const Onnx__GraphProto *g, NameSet *defined, const char *origin) {
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *nd = g->node[i];
        char nb[80], vb[80];
        const char *node = dg_printable(nd->name && *nd->name ? nd->name : "(unnamed)", nb, sizeof nb);
        if (!nd->op_type || !*nd->op_type) return dg_set_error("%s: node '%s' has no op type", origin, node);
        if (nd->domain && *nd->domain && strcmp(nd->domain, "ai.onnx") != 0)
            return dg_set_error("%s: node '%s': domain '%s' is not supported", origin, node,
                                dg_printable(nd->domain, vb, sizeof vb));
        for (size_t k = 0; k < nd->n_input; k++) {
            if (!nd->input[k]) return dg_set_error("%s: node '%s': input %zu has no name", origin, node, k);
            if (*nd->input[k] && !nameset_has(defined, nd->input[k]))
                return dg_set_error("%s: node '%s' reads '%s', which no graph input, initializer or earlier node "
                                    "defines (a cycle, or nodes out of order)",
                                    origin, node, dg_printable(nd->input[k], vb, sizeof vb));
        }
        for (size_t k = 0; k < nd->n_output; k++) {
            if (!nd->output[k]) return dg_set_error("%s: node '%s': output %zu has no name", origin, node, k);
            if (*nd->output[k] && nameset_add(defined, nd->output[k]) < 0)
                return dg_set_error("%s: node '%s': value '%s' is defined twice", origin, node,
                                    dg_printable(nd->output[k], vb, sizeof vb));
        }
        if (check_attributes(nd, origin, node) < 0) return -1;
    }
    return 0;
}

/* The graph: counts, inputs, initializers, nodes, outputs. */
static int check_graph(const Onnx__GraphProto *g, const char *origin) {
    if (g->n_node > ONNX_MAX_NODES || g->n_initializer > ONNX_MAX_NODES || g->n_input > ONNX_MAX_NODES)
        return dg_set_error("%s: graph has too many nodes or tensors (at most %d each)", origin, ONNX_MAX_NODES);
    if (g->n_sparse_initializer) return dg_set_error("%s: sparse initializers are not supported", origin);
    size_t n_names = g->n_input + g->n_initializer;
    for (size_t i = 0; i < g->n_node; i++) n_names += g->node[i]->n_output;
    NameSet defined;
    nameset_init(&defined, n_names);
    int rc = -1;
    char vb[80];
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        if (!t->name || !*t->name) {
            dg_set_error("%s: initializer %zu has no name", origin, i);
            goto done;
        }
        if (check_tensor(t, origin, "initializer") < 0) goto done;
        if (nameset_add(&defined, t->name) < 0) {
            dg_set_error("%s: initializer '%s' is defined twice", origin, dg_printable(t->name, vb, sizeof vb));
            goto done;
        }
    }
    for (size_t i = 0; i < g->n_input; i++) {
        const char *name = g->input[i]->name;
        if (!name || !*name) {
            dg_set_error("%s: graph input %zu has no name", origin, i);
            goto done;
        }
        nameset_add(&defined, name); /* older exporters list initializers as inputs too */
    }
    if (check_nodes(g, &defined, origin) < 0) goto done;
    if (g->n_output == 0) {
        dg_set_error("%s: the graph has no output", origin);
        goto done;
    }
    for (size_t i = 0; i < g->n_output; i++) {
        const char *name = g->output[i]->name;
        if (!name || !nameset_has(&defined, name)) {
            dg_set_error("%s: graph output '%s' is never computed", origin,
                         dg_printable(name ? name : "", vb, sizeof vb));
            goto done;
        }
    }
    rc = 0;
done:
    free(defined.slot);
    return rc;
}

/* The model: IR version, opset, graph. */
static int check_model(const Onnx__ModelProto *mp, const char *origin) {
    if (!mp->has_ir_version || mp->ir_version < 3 || mp->ir_version > 10)
        return dg_set_error("%s: IR version %" PRId64 " is not supported (3..10)", origin,
                            mp->has_ir_version ? mp->ir_version : 0);
    int64_t opset = 0;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if ((!o->domain || !*o->domain || strcmp(o->domain, "ai.onnx") == 0) && o->has_version) opset = o->version;
    }
    if (opset < 7 || opset > 21)
        return dg_set_error("%s: opset %" PRId64 " of the default domain is not supported (7..21)", origin, opset);
    if (mp->n_functions) return dg_set_error("%s: model-local functions are not supported", origin);
    if (!mp->graph) return dg_set_error("%s: the model has no graph", origin);
    for (size_t i = 0; i < mp->n_metadata_props; i++)
        if (!mp->metadata_props[i]->key) return dg_set_error("%s: metadata entry %zu has no key", origin, i);
    return check_graph(mp->graph, origin);
}

/* ==== reading and writing ================================================== */

Onnx__ModelProto *onnx_parse(const uint8_t *data, size_t len, const char *origin) {
    if (len > ONNX_MAX_FILE) {
        dg_set_error("%s: %zu bytes (at most %zu)", origin, len, (size_t)ONNX_MAX_FILE);
        return NULL;
    }
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, data);
    if (!mp) {
        dg_set_error("%s: not an ONNX model (its protobuf data is truncated, malformed or of the wrong wire types)", origin);
        return NULL;
    }
    if (check_model(mp, origin) < 0) {
        onnx__model_proto__free_unpacked(mp, NULL);
        return NULL;
    }
    return mp;
}

int onnx_check_buffer(const uint8_t *data, size_t len, const char *origin) {
    Onnx__ModelProto *mp = onnx_parse(data, len, origin);
    if (!mp) return -1;
    onnx_model_free(mp);
    return 0;
}

Onnx__ModelProto *onnx_read(const char *path) {
    char *data;
    size_t len;
    if (read_whole_file(path, ONNX_MAX_FILE, &data, &len) < 0) return NULL;
    Onnx__ModelProto *mp = onnx_parse((const uint8_t *)data, len, path);
    free(data);
    return mp;
}

void onnx_model_free(Onnx__ModelProto *mp) {
    if (mp) onnx__model_proto__free_unpacked(mp, NULL);
}

int onnx_write(const Onnx__ModelProto *mp, const char *path) {
    size_t len = onnx__model_proto__get_packed_size(mp);
    uint8_t *buf = dg_xmalloc(len ? len : 1);
    onnx__model_proto__pack(mp, buf);
    AtomicFile af;
    int rc = -1;
    if (atomic_file_open(&af, path) < 0) goto done;
    if (fwrite(buf, 1, len, af.f) != len) {
        dg_set_error("%s: write failed", path);
        atomic_file_abort(&af);
        goto done;
    }
    rc = atomic_file_commit(&af);
done:
    free(buf);
    return rc;
}

int onnx_is_onnx_path(const char *path) {
    size_t n = strlen(path);
    return n > 5 && strcasecmp(path + n - 5, ".onnx") == 0;
}
