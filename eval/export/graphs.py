"""A jax-ast network as ONNX graphs, converted by jax2onnx, with the input convention in the metadata.

Graphs (NHWC float32 in [0, 1], batch 1; the sides are fixed at export time, except Magenta's content
height and width, which can stay dynamic: docs/export.md says why):

* ``encode_style``: style [1,Hs,Ws,3] -> the style code's leaves, one output each (``code/<key>``);
* ``stylize_with_code``: content [1,H,W,3] + the code's leaves -> stylized [1,H,W,3];
* ``stylize``: content [1,H,W,3], style [1,Hs,Ws,3] -> stylized [1,H,W,3] (alpha 1): the two graphs above joined
  into one by ``onnx.compose``, the code passed from one to the other inside it. jax2onnx converts each network
  part once: converting the whole network a third time took longer than both parts together (its graph clean-up
  grows with the square of the graph's size; docs/export.md).

Magenta's split pair takes the names and shapes of the mobile release's ``arbitrary_predict.onnx`` /
``arbitrary_transform.onnx`` (`MAGENTA_CODE`, `MAGENTA_OUTPUT`), so programs written for those files run it.
"""

from __future__ import annotations

import copy
import importlib.util
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from eval.export.lowering import onnx_friendly
from jax_ast.models.magenta import Magenta

OPSET = 21  # ReduceMean etc. with axes as inputs (opset >= 18); onnxruntime >= 1.18 runs it
CONVERTER = "jax2onnx"
INPUT_CONVENTION = "NHWC float32 RGB in [0, 1], batch 1; output NHWC float32 in [0, 1]"
# The tensor names of the mobile Magenta release's pair: the code [1, 1, 1, 100] and the stylized image.
MAGENTA_CODE = "mobilenet_conv/Conv/BiasAdd"
MAGENTA_OUTPUT = "transformer/expand/conv3/conv/Sigmoid"
MIN_DYNAMIC_SIDE = 16  # smallest content side a dynamic graph is traced for (the CLI's smallest --size)


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


def _to_onnx(fn: Any, specs: list, name: str, inputs: list[str], outputs: list[str]) -> Any:
    """The ModelProto of `fn` traced at `specs`, without metadata."""
    if not converter_installed():
        raise ConverterMissing(f"the ONNX converter {CONVERTER} is not installed; pip install 'jax-ast[export]'")
    from jax2onnx import to_onnx  # optional extra: imported only when exporting

    with onnx_friendly():
        return to_onnx(fn, specs, model_name=name, opset=OPSET, input_names=inputs, output_names=outputs)


def _graph(proto: Any, name: str, meta: dict[str, str]) -> Graph:
    """`proto` with jax-ast's metadata_props (`meta`, the graph's name, the opset and the input convention)."""
    for key, value in {**meta, "graph": name, "opset": str(OPSET), "input_convention": INPUT_CONVENTION}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return Graph(name, proto, tuple(value.name for value in proto.graph.input),
                 tuple(value.name for value in proto.graph.output))


def _joined(encode: Any, with_code: Any, output: str) -> Any:
    """One ModelProto: (content_image, style_image) -> `output`, `encode`'s outputs feeding `with_code`'s inputs
    of the same names. Every other name gets its part's prefix (the converter names both parts' tensors alike)."""
    import onnx.compose  # installed with the converter

    code = [value.name for value in encode.graph.output]
    parts = [onnx.compose.add_prefix(proto, prefix, rename_inputs=False, rename_outputs=False)
             for proto, prefix in ((encode, "encode_style/"), (with_code, "stylize_with_code/"))]
    joined = onnx.compose.merge_models(*parts, io_map=list(zip(code, code)), name="stylize")
    renamed = joined.graph.output[0].name
    for node in joined.graph.node:
        node.input[:] = [output if name == renamed else name for name in node.input]
        node.output[:] = [output if name == renamed else name for name in node.output]
    joined.graph.output[0].name = output
    inputs = [copy.deepcopy(value) for value in sorted(joined.graph.input,  # content, then style
                                                        key=lambda value: value.name != "content_image")]
    del joined.graph.input[:]
    joined.graph.input.extend(inputs)
    unique = {entry.domain: entry.version for entry in joined.opset_import}
    del joined.opset_import[:]
    joined.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in unique.items())
    return joined


def _image(height: int, width: int) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)


def _dynamic_image() -> jax.ShapeDtypeStruct:
    """[1, H, W, 3] with symbolic sides H, W >= `MIN_DYNAMIC_SIDE` (ONNX dim_params "H", "W")."""
    shape = jax.export.symbolic_shape("1, H, W, 3", constraints=(f"H >= {MIN_DYNAMIC_SIDE}",
                                                                 f"W >= {MIN_DYNAMIC_SIDE}"))
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def dynamic_sides(model: Any) -> bool:
    """Whether `model`'s content height and width can stay dynamic in the graphs (Magenta only: the other
    networks reflect-pad the content to a multiple of their stride by a side-dependent width, docs/export.md)."""
    return isinstance(model, Magenta)


def export_graphs(model: Any, variables: Any, *, size: tuple[int, int] | None, style_size: tuple[int, int],
                  meta: dict[str, str], split: bool = True) -> list[Graph]:
    """The whole-stylisation graph and, with `split`, the style-encoder and stylise-with-code graphs.

    Args:
      model, variables: a jax-ast network and its variables (`eval.inference.loading.load_model`).
      size: (height, width) of the content the graphs take; None: dynamic (`dynamic_sides` models only).
      style_size: (height, width) of the style.
      meta: extra metadata_props (arch, variant, weights); content_size and style_size ("HxW" or "dynamic ...")
        are added.
    """
    if size is None and not dynamic_sides(model):
        raise ValueError(f"{type(model).__name__} exports at fixed sizes only: give size=(height, width)")
    content_spec, style_spec = (_dynamic_image() if size is None else _image(*size)), _image(*style_size)
    meta = {**meta, "content_size": f"dynamic, H and W >= {MIN_DYNAMIC_SIDE}" if size is None else "x".join(
        map(str, size)), "style_size": "x".join(map(str, style_size))}

    encode, with_code, code_names, code_specs, output = _split(model, variables, style_spec)
    encode_proto = _to_onnx(encode, [style_spec], "encode_style", ["style_image"], code_names)
    with_code_proto = _to_onnx(with_code, [content_spec, *code_specs], "stylize_with_code",
                               ["content_image", *code_names], [output])
    whole = _graph(_joined(encode_proto, with_code_proto, "stylized_image"), "stylize", meta)
    if not split:
        return [whole]
    return [whole, _graph(encode_proto, "encode_style", meta), _graph(with_code_proto, "stylize_with_code", meta)]


def _split(model: Any, variables: Any, style_spec: jax.ShapeDtypeStruct):
    """(encode(style) -> code leaves, with_code(content, *leaves) -> stylized, leaf names, leaf specs, output
    name): ``code/<key>`` per leaf of `encode_style`'s tree, or the mobile Magenta release's names."""
    code_shape = jax.eval_shape(lambda s: model.apply(variables, s, method="encode_style"), style_spec)
    if isinstance(model, Magenta):  # code [1, 100] carried as [1, 1, 1, 100], as the release does
        spec = jax.ShapeDtypeStruct((code_shape.shape[0], 1, 1, code_shape.shape[1]), code_shape.dtype)

        def encode_magenta(style):
            return model.apply(variables, style, method="encode_style")[:, None, None, :]

        def magenta_with_code(content, code):
            return model.apply(variables, content, code[:, 0, 0, :], method="stylize_with_code")

        return encode_magenta, magenta_with_code, [MAGENTA_CODE], [spec], MAGENTA_OUTPUT
    leaves, treedef = jax.tree_util.tree_flatten_with_path(code_shape)
    code_names = ["code/" + "/".join(str(getattr(k, "key", k)) for k in path) for path, _ in leaves]

    def encode(style):
        return tuple(jax.tree_util.tree_leaves(model.apply(variables, style, method="encode_style")))

    def with_code(content, *code_leaves):
        code = jax.tree_util.tree_unflatten(treedef, code_leaves)
        return model.apply(variables, content, code, method="stylize_with_code")

    return encode, with_code, code_names, [leaf for _, leaf in leaves], "stylized_image"
