"""A jax-ast network as ONNX graphs, converted by jax2onnx, with the input convention in the metadata.

Graphs (NHWC float32 in [0, 1], batch 1, sides fixed at export time; docs/export.md says why):

* ``stylize``: content [1,H,W,3], style [1,Hs,Ws,3] -> stylized [1,H,W,3] (the model's ``__call__``, alpha 1);
* ``encode_style``: style [1,Hs,Ws,3] -> the style code's leaves, one output each (``code/<key>``);
* ``stylize_with_code``: content [1,H,W,3] + the code's leaves -> stylized [1,H,W,3].
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

OPSET = 21  # ReduceMean etc. with axes as inputs (opset >= 18); onnxruntime >= 1.18 runs it
CONVERTER = "jax2onnx"
INPUT_CONVENTION = "NHWC float32 RGB in [0, 1], batch 1; output NHWC float32 in [0, 1]"
# Networks jax2onnx 0.17.1 cannot convert yet (docs/export.md, What does not export).
UNSUPPORTED = {
    "magenta": "jax2onnx 0.17.1 lowers Magenta's Inception/MobileNet style predictor to graphs onnxruntime "
               "rejects (MaxPool 'Unsupported pooling size'; a Concat with mismatched shapes)",
}


class ConverterMissing(RuntimeError):
    """jax2onnx is not installed (``pip install jax-ast[export]``)."""


@dataclass(frozen=True)
class Graph:
    """One exported graph: its name, the ONNX ModelProto, and its input and output names."""

    name: str
    proto: Any
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def converter_installed() -> bool:
    return importlib.util.find_spec(CONVERTER) is not None


def _to_onnx(fn: Any, specs: list, name: str, inputs: list[str], outputs: list[str], meta: dict[str, str]) -> Graph:
    if not converter_installed():
        raise ConverterMissing(f"the ONNX converter {CONVERTER} is not installed; pip install 'jax-ast[export]'")
    from jax2onnx import to_onnx  # optional extra: imported only when exporting

    proto = to_onnx(fn, specs, model_name=name, opset=OPSET, input_names=inputs, output_names=outputs)
    for key, value in {**meta, "graph": name, "opset": str(OPSET), "input_convention": INPUT_CONVENTION}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return Graph(name, proto, tuple(inputs), tuple(outputs))


def _image(height: int, width: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)


def export_graphs(model: Any, variables: Any, *, size: tuple[int, int], style_size: tuple[int, int],
                  meta: dict[str, str], split: bool = True) -> list[Graph]:
    """The whole-stylisation graph and, with `split`, the style-encoder and stylise-with-code graphs.

    Args:
      model, variables: a jax-ast network and its variables (`eval.inference.loading.load_model`).
      size, style_size: (height, width) of the content and the style the graphs take.
      meta: extra metadata_props (arch, variant, weights).
    """
    content_spec, style_spec = _image(*size), _image(*style_size)

    def stylize(content, style):
        return model.apply(variables, content, style, train=False)[0]

    graphs = [_to_onnx(stylize, [content_spec, style_spec], "stylize", ["content_image", "style_image"],
                       ["stylized_image"], meta)]
    if not split:
        return graphs
    code_shape = jax.eval_shape(lambda s: model.apply(variables, s, method="encode_style"), style_spec)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(code_shape)
    code_names = ["code/" + "/".join(str(getattr(k, "key", k)) for k in path) for path, _ in leaves]

    def encode(style):
        return tuple(jax.tree_util.tree_leaves(model.apply(variables, style, method="encode_style")))

    def with_code(content, *code_leaves):
        code = jax.tree_util.tree_unflatten(treedef, code_leaves)
        return model.apply(variables, content, code, method="stylize_with_code")

    graphs.append(_to_onnx(encode, [style_spec], "encode_style", ["style_image"], code_names, meta))
    graphs.append(_to_onnx(with_code, [content_spec, *[leaf for _, leaf in leaves]], "stylize_with_code",
                           ["content_image", *code_names], ["stylized_image"], meta))
    return graphs
