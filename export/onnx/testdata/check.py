# Checks an ONNX file with the onnx package (Debian's python3-onnx) for the Go
# tests of package onnx: onnx.checker with full_check (which also runs shape
# inference), then prints what the tests compare as JSON.
import json
import sys

import onnx

path = sys.argv[1]
onnx.checker.check_model(path, full_check=True)
m = onnx.load(path)


def shape(vi):
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


print(json.dumps({
    "ir_version": m.ir_version,
    "opsets": {o.domain: o.version for o in m.opset_import},
    "inputs": [[vi.name, vi.type.tensor_type.elem_type, shape(vi)] for vi in m.graph.input],
    "outputs": [[vi.name, vi.type.tensor_type.elem_type, shape(vi)] for vi in m.graph.output],
    "ops": sorted({n.op_type for n in m.graph.node}),
    "nodes": len(m.graph.node),
    "initializers": {t.name: [t.data_type, list(t.dims)] for t in m.graph.initializer},
    "metadata": {p.key: p.value for p in m.metadata_props},
}))
