# onnx_bytes.bash — hand-built broken ONNX files (protobuf bytes written
# with printf), for tests/e2e/hostile.sh and fuzz/make_corpus.sh (sourced).
# Each function writes one file: onnx_NAME FILE. Every file starts with
# ir_version 8 (08 08) and opset_import {version 17} (42 02 10 11).

ONNX_HEAD='\x08\x08\x42\x02\x10\x11'
# an initializer of 2^40 elements: dims [2^40] (varint 80 80 80 80 80 20), float, name "w", no data
onnx_huge() { printf "$ONNX_HEAD"'\x3a\x0e\x2a\x0c\x08\x80\x80\x80\x80\x80\x20\x10\x01\x42\x01w' >"$1"; }
# dims [10], float, raw_data of 8 bytes: data shorter than its shape
onnx_short() { printf "$ONNX_HEAD"'\x3a\x13\x2a\x11\x08\x0a\x10\x01\x42\x01w\x4a\x08abcdefgh' >"$1"; }
# a cycle: node A (Relu) reads b, node B (Relu) reads a
onnx_cycle() {
    printf "$ONNX_HEAD"'\x3a\x22\x0a\x0f\x0a\x01b\x12\x01a\x1a\x01A\x22\x04Relu\x0a\x0f\x0a\x01a\x12\x01b\x1a\x01B\x22\x04Relu' >"$1"
}
# ir_version (field 1, a varint) written as a length-delimited field: the wrong wire type
onnx_wiretype() { printf '\x0a\x01x\x42\x02\x10\x11' >"$1"; }
# a length that runs past the end of the file
onnx_overrun() { printf "$ONNX_HEAD"'\x3a\x7f\x0a\x0f' >"$1"; }
