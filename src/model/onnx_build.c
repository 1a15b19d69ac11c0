/* onnx_build.c — the ONNX graph builder (onnx_build.h): protobuf-c
 * structs, every allocation tracked by the builder and freed at once, and
 * the model around a finished graph.
 * Left out: external data, subgraphs, other domains. */
#include "model/onnx_build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/check.h"
#include "core/version.h"

void *b_alloc(Builder *b, size_t bytes) {
    if (b->n_allocs == b->cap_allocs) {
        b->cap_allocs = b->cap_allocs ? 2 * b->cap_allocs : 256;
        void **p = realloc(b->allocs, b->cap_allocs * sizeof *p);
        DG_ASSERT(p);
        b->allocs = p;
    }
    void *p = dg_xcalloc(1, bytes ? bytes : 1);
    b->allocs[b->n_allocs++] = p;
    return p;
}

char *b_fmt(Builder *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = b_alloc(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Append p to a growable pointer array (builder-independent storage). */
static void push(void ***arr, size_t *n, size_t *cap, void *p) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        void **q = realloc(*arr, *cap * sizeof *q);
        DG_ASSERT(q);
        *arr = q;
    }
    (*arr)[(*n)++] = p;
}

void builder_free(Builder *b) {
    for (size_t i = 0; i < b->n_allocs; i++) free(b->allocs[i]);
    free(b->allocs);
    free(b->nodes);
    free(b->inits);
}

/* A node op(inputs...) -> one output named out (NULL: a fresh name).
 * Returns the node; its output is node->output[0]. */
Onnx__NodeProto *b_node(Builder *b, const char *op, const char *out, int n_in, ...) {
    Onnx__NodeProto *nd = b_alloc(b, sizeof *nd);
    onnx__node_proto__init(nd);
    nd->op_type = (char *)op;
    nd->name = b_fmt(b, "%s_%zu", op, b->n_nodes);
    nd->n_input = (size_t)n_in;
    nd->input = b_alloc(b, (size_t)n_in * sizeof(char *));
    va_list ap;
    va_start(ap, n_in);
    for (int i = 0; i < n_in; i++) nd->input[i] = va_arg(ap, char *);
    va_end(ap);
    nd->n_output = 1;
    nd->output = b_alloc(b, sizeof(char *));
    nd->output[0] = out ? (char *)out : b_fmt(b, "v%zu", b->n_nodes);
    push((void ***)&b->nodes, &b->n_nodes, &b->cap_nodes, nd);
    return nd;
}

/* Add one attribute slot to nd and return it, named. */
Onnx__AttributeProto *b_attr(Builder *b, Onnx__NodeProto *nd, const char *name,
                                    Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto **a = b_alloc(b, (nd->n_attribute + 1) * sizeof *a);
    if (nd->n_attribute) memcpy(a, nd->attribute, nd->n_attribute * sizeof *a);
    nd->attribute = a;
    Onnx__AttributeProto *at = b_alloc(b, sizeof *at);
    onnx__attribute_proto__init(at);
    at->name = (char *)name;
    at->has_type = 1;
    at->type = type;
    a[nd->n_attribute++] = at;
    return at;
}

void b_attr_int(Builder *b, Onnx__NodeProto *nd, const char *name, int64_t v) {
    Onnx__AttributeProto *at = b_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    at->has_i = 1;
    at->i = v;
}

void b_attr_float(Builder *b, Onnx__NodeProto *nd, const char *name, float v) {
    Onnx__AttributeProto *at = b_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    at->has_f = 1;
    at->f = v;
}

void b_attr_string(Builder *b, Onnx__NodeProto *nd, const char *name, const char *v) {
    Onnx__AttributeProto *at = b_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    at->has_s = 1;
    at->s.data = (uint8_t *)v;
    at->s.len = strlen(v);
}

void b_attr_ints(Builder *b, Onnx__NodeProto *nd, const char *name, int n, int64_t v) {
    Onnx__AttributeProto *at = b_attr(b, nd, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    at->n_ints = (size_t)n;
    at->ints = b_alloc(b, (size_t)n * sizeof(int64_t));
    for (int i = 0; i < n; i++) at->ints[i] = v;
}

char *b_tensor(Builder *b, char *name, int data_type, size_t elem_size, int ndim, const int64_t *dims,
               const void *data) {
    Onnx__TensorProto *t = b_alloc(b, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = name;
    t->n_dims = (size_t)ndim;
    t->dims = b_alloc(b, (size_t)ndim * sizeof(int64_t));
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= (size_t)(t->dims[i] = dims[i]);
    t->has_data_type = 1;
    t->data_type = data_type;
    size_t bytes = count * elem_size;
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = b_alloc(b, bytes);
    memcpy(t->raw_data.data, data, bytes);
    push((void ***)&b->inits, &b->n_inits, &b->cap_inits, t);
    return name;
}

char *b_init(Builder *b, char *name, int ndim, const int64_t *dims, const float *data, const int64_t *data64) {
    if (data) return b_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, sizeof(float), ndim, dims, data);
    return b_tensor(b, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, sizeof(int64_t), ndim, dims, data64);
}

char *b_scalar(Builder *b, char *name, float v) { return b_init(b, name, 0, NULL, &v, NULL); }

Onnx__ValueInfoProto *b_value_info(Builder *b, const char *name, int elem_type, int ndim, const int *dims) {
    Onnx__ValueInfoProto *vi = b_alloc(b, sizeof *vi);
    onnx__value_info_proto__init(vi);
    vi->name = (char *)name;
    Onnx__TypeProto *tp = b_alloc(b, sizeof *tp);
    onnx__type_proto__init(tp);
    Onnx__TypeProto__Tensor *tt = b_alloc(b, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = elem_type;
    Onnx__TensorShapeProto *sh = b_alloc(b, sizeof *sh);
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = (size_t)ndim;
    sh->dim = b_alloc(b, (size_t)ndim * sizeof *sh->dim);
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = b_alloc(b, sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = "N";
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        sh->dim[i] = d;
    }
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->type = tp;
    return vi;
}

/* metadata_props: the pairs of kv (key, value, ..., NULL). */
static void set_metadata(Builder *b, Onnx__ModelProto *mp, const char *const *kv) {
    size_t n = 0;
    while (kv[2 * n]) n++;
    mp->n_metadata_props = n;
    mp->metadata_props = b_alloc(b, n * sizeof *mp->metadata_props);
    for (size_t i = 0; i < n; i++) {
        Onnx__StringStringEntryProto *e = b_alloc(b, sizeof *e);
        onnx__string_string_entry_proto__init(e);
        e->key = (char *)kv[2 * i];
        e->value = (char *)(kv[2 * i + 1] ? kv[2 * i + 1] : "");
        mp->metadata_props[i] = e;
    }
}


int b_write_model(Builder *b, const char *path, Onnx__ValueInfoProto **in, int n_in, Onnx__ValueInfoProto **out,
                  int n_out, const char *const *kv) {
    Onnx__GraphProto g;
    onnx__graph_proto__init(&g);
    g.name = "digits";
    g.n_node = b->n_nodes, g.node = b->nodes;
    g.n_initializer = b->n_inits, g.initializer = b->inits;
    g.n_input = (size_t)n_in, g.input = in;
    g.n_output = (size_t)n_out, g.output = out;

    Onnx__OperatorSetIdProto opset;
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = "";
    opset.has_version = 1, opset.version = ONNX_OPSET;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    Onnx__ModelProto mp;
    onnx__model_proto__init(&mp);
    mp.has_ir_version = 1, mp.ir_version = ONNX_IR_VERSION;
    mp.n_opset_import = 1, mp.opset_import = opsets;
    mp.producer_name = "digits";
    mp.producer_version = DG_VERSION;
    mp.graph = &g;
    set_metadata(b, &mp, kv);
    return onnx_write(&mp, path);
}
