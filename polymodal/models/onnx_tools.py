"""ONNX Runtime sessions sized for small machines, and the one graph rewrite we apply to a bundled model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def onnx_session(path: str, threads: int, custom_ops: bool = False, memory_arena: bool = True) -> Any:
    """A CPU session with ``threads`` intra-op threads and no thread oversubscription.

    ``memory_arena=False`` suits a session that several Python threads call at once: they then do not take
    turns on one arena's lock (the text encoder: 1,051 vs 954 passages/s, two callers, batches of 4).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = memory_arena
    # Idle pool threads sleep instead of spinning: the indexer's decoding threads and the other models need the
    # cores (on 2 cores shared with other jobs, 2 spinning threads were 20 % slower than 2 sleeping ones).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if custom_ops:
        import onnxruntime_extensions

        options.register_custom_ops_library(onnxruntime_extensions.get_library_path())
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def with_fused_layer_norms(source: Path, target: Path) -> int:
    """Write ``source`` to ``target`` with TensorFlow-style layer norms replaced by ``LayerNormalization``.

    TensorFlow exports a layer norm as twelve elementwise and reduction nodes (``moments/mean``,
    ``SquaredDifference``, ``variance``, ``batchnorm/add``, ``Rsqrt``, ``mul``, ``mul_1``, ``mul_2``, ``sub``,
    ``add_1``), each a full pass over the activations, which ONNX Runtime does not fuse. One fused node does
    two passes. Returns how many layer norms were fused; the file is written atomically.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    constants = {tensor.name: tensor for tensor in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in dict.fromkeys(node.input):  # x * x lists x twice
            consumers.setdefault(name, []).append(node)

    def single(value: str, op_type: str) -> Any:
        (node,) = [n for n in consumers.get(value, []) if n.op_type == op_type]
        return node

    replaced: dict[int, Any] = {}  # id(final Add) -> fused node
    removed: set[int] = set()
    for mean in [n for n in graph.node if n.op_type == "ReduceMean" and n.name.endswith("moments/mean")]:
        x = mean.input[0]
        try:
            (centred,) = [n for n in consumers[mean.output[0]] if n.op_type == "Sub" and n.input[0] == x]
            squared = single(centred.output[0], "Mul")
            variance = single(squared.output[0], "ReduceMean")
            plus_eps = single(variance.output[0], "Add")
            root = single(plus_eps.output[0], "Sqrt")
            inverse = single(root.output[0], "Reciprocal")
            scale = single(inverse.output[0], "Mul")
            (scaled_x,) = [n for n in consumers[scale.output[0]] if x in n.input]
            (scaled_mean,) = [n for n in consumers[scale.output[0]] if mean.output[0] in n.input]
            shift = single(scaled_mean.output[0], "Sub")
            output = single(scaled_x.output[0], "Add")
            gamma = next(i for i in scale.input if i != inverse.output[0])
            epsilon = float(numpy_helper.to_array(constants[next(i for i in plus_eps.input if i in constants)]))
        except (KeyError, StopIteration, ValueError):
            continue  # not the pattern: leave this part of the graph as it is
        if shift.output[0] not in output.input or gamma not in constants or shift.input[0] not in constants:
            continue
        nodes = (mean, centred, squared, variance, plus_eps, root, inverse, scale, scaled_x, scaled_mean, shift)
        removed.update(id(n) for n in nodes)
        replaced[id(output)] = helper.make_node(
            "LayerNormalization", [x, gamma, shift.input[0]], list(output.output),
            name=mean.name.replace("moments/mean", "fused"), axis=-1, epsilon=epsilon,
        )  # fmt: skip
    kept = [replaced.get(id(n), n) for n in graph.node if id(n) not in removed]
    del graph.node[:]
    graph.node.extend(kept)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx")
    os.close(fd)
    onnx.save(model, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    return len(replaced)
