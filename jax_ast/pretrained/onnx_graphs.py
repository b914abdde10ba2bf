"""Reading quantised (QDQ) ONNX graphs: exact weight dequantisation, and float copies for parity and speed.

A tf2onnx conversion of an int8 TFLite model stores every conv weight as int8 (int32 for biases) behind a
``DequantizeLinear`` node with per-output-channel scales, and quantises the activations between layers with
``QuantizeLinear`` -> ``DequantizeLinear`` pairs (sometimes ``Q -> Reshape/Transpose -> DQ``).

* `conv_weights` gives each Conv's dequantised kernel and bias, computed as onnxruntime does
  (``float32(q - zero_point) * scale``, along the node's ``axis``).
* `without_activation_quantisation` bypasses every activation Q/DQ pair and keeps the weight
  ``DequantizeLinear`` nodes: the copy computes in float with exactly the dequantised weights.
* `with_dynamic_size` marks the height and width of the NHWC inputs and outputs symbolic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jax_ast.pretrained.convert import WeightsError

_PASS_THROUGH = ("Reshape", "Transpose")  # ops tf2onnx puts between an activation's Q and DQ


def load_model(path: str | Path) -> Any:
    """The ONNX model at `path` (needs the ``onnx`` package); `WeightsError` when unreadable."""
    try:
        import onnx  # noqa: PLC0415 - only the ONNX sources need it
    except ImportError as err:
        raise WeightsError(f"reading {path} needs the onnx package (pip install onnx): {err}") from None
    try:
        return onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError, ValueError, OSError...
        raise WeightsError(f"{path} is not a readable ONNX file ({type(err).__name__}: {err})") from None


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int = 1) -> np.ndarray:
    """ONNX ``DequantizeLinear``: float32(q - zero_point) * scale, per channel along `axis` for 1-d scales."""
    zero = np.zeros((), np.int64) if zero_point is None else np.asarray(zero_point, np.int64)
    scale = np.asarray(scale, np.float32)
    if scale.ndim == 1 and q.ndim > 1:
        shape = [1] * q.ndim
        shape[axis % q.ndim] = -1
        scale, zero = scale.reshape(shape), (zero.reshape(shape) if zero.ndim == 1 else zero)
    return (np.asarray(q, np.int64) - zero).astype(np.float32) * scale


def _initializers(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper  # noqa: PLC0415

    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def _constant(name: str, initializers: dict[str, np.ndarray], producers: dict[str, Any]) -> tuple[np.ndarray, str]:
    """(float value, stored name) of a constant input: an initializer or a DequantizeLinear of initializers."""
    if name in initializers:
        return np.asarray(initializers[name], np.float32), name
    node = producers.get(name)
    if node is None or node.op_type != "DequantizeLinear" or any(i not in initializers for i in node.input if i):
        raise WeightsError(f"conv input {name!r} is neither an initializer nor a dequantised one")
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    inputs = [initializers[i] for i in node.input if i]
    return dequantize(inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None, axis), node.input[0]


def conv_weights(model: Any) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """{scope: (kernel OIHW float32, bias float32 or None)} of every Conv node, dequantised exactly.

    The scope is the stored weight's name without its last component (``MobilenetV2/Conv/weights`` ->
    ``MobilenetV2/Conv``); two convs sharing one weight raise `WeightsError`.
    """
    graph = model.graph
    initializers = _initializers(graph)
    producers = {out: node for node in graph.node for out in node.output}
    convs: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        kernel, stored = _constant(node.input[1], initializers, producers)
        bias = _constant(node.input[2], initializers, producers)[0] if len(node.input) > 2 and node.input[2] else None
        scope = stored.rsplit("/", 1)[0]
        if scope in convs:
            raise WeightsError(f"two Conv nodes read the weights of {scope!r}")
        convs[scope] = (kernel, bias)
    return convs


def without_activation_quantisation(model: Any) -> Any:
    """A copy of `model` with every activation QuantizeLinear/DequantizeLinear pair bypassed.

    ``Q -> DQ`` becomes the identity of Q's input; in ``Q -> Reshape/Transpose -> DQ`` the reshape or
    transpose reads Q's float input instead. DequantizeLinear nodes of initializers (the weights) stay, so
    the copy computes in float32 with exactly the dequantised weights. Nodes left unused are dropped.
    """
    import onnx  # noqa: PLC0415

    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    constants = {init.name for init in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    nodes = []
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] in constants:
            nodes.append(node)
            continue
        source = producers.get(node.input[0])
        if source is not None and source.op_type in _PASS_THROUGH:
            quantize = producers.get(source.input[0])
            if quantize is None or quantize.op_type != "QuantizeLinear":
                raise WeightsError(f"{node.name}: {source.op_type} {source.name} does not read a QuantizeLinear")
            source.input[0] = quantize.input[0]  # the reshape/transpose now moves the float activation
            float_input = source.output[0]
        elif source is not None and source.op_type == "QuantizeLinear" or source is None:
            float_input = source.input[0] if source is not None else node.input[0]
        else:
            raise WeightsError(f"{node.name} dequantises the output of {source.op_type} {source.name}")
        nodes.append(onnx.helper.make_node("Identity", [float_input], list(node.output), name=node.name + "/float"))
    del graph.node[:]
    graph.node.extend(_live(nodes, {out.name for out in graph.output}))
    read = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in read]  # the dropped Q/DQ scales
    for init in unused:
        graph.initializer.remove(init)
    del graph.value_info[:]  # the old int8 annotations of rewired tensors no longer hold
    return model


def _live(nodes: list[Any], outputs: set[str]) -> list[Any]:
    """`nodes` without those whose outputs nothing reads (repeated until none is left)."""
    while True:
        read = {name for node in nodes for name in node.input} | outputs
        kept = [node for node in nodes if any(out in read for out in node.output)]
        if len(kept) == len(nodes):
            return kept
        nodes = kept


def with_dynamic_size(model: Any, *, axes: tuple[int, int] = (1, 2)) -> Any:
    """A copy of `model` whose 4-d inputs and outputs have symbolic height/width (NHWC `axes`)."""
    import onnx  # noqa: PLC0415

    model = onnx.ModelProto.FromString(model.SerializeToString())
    for value in [*model.graph.input, *model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and all(d.dim_value > 1 for d in (dims[axes[0]], dims[axes[1]])):
            for axis, name in zip(axes, ("height", "width")):
                dims[axis].dim_param = f"{value.name}_{name}"
    del model.graph.value_info[:]
    return model
