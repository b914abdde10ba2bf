"""ONNX export (eval.export): onnxruntime on the exported graphs equals jax-ast, and the CLI's bad inputs.

Random weights (the test names say so): parity of the conversion, not of released weights. One export per
network and size per session, at tiny sizes, to stay fast.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax2onnx")
ort = pytest.importorskip("onnxruntime")

from eval.common import guards  # noqa: E402
from eval.export import cli, graphs  # noqa: E402
from eval.inference.loading import random_model  # noqa: E402

# Each export has a fixed size (no dynamic axes yet, docs/export.md), so a second size per network would repeat
# the same check; both orientations are covered across the networks.
NETWORKS = [("adain", None, (32, 48)), ("sanet", None, (48, 32)), ("linear", "r41", (32, 48)),
            ("linear", "r31", (48, 32))]
STYLE_SIZE = (32, 32)
RTOL = 1e-4


def _images(size):
    rng = np.random.default_rng(0)
    return (rng.random((1, *size, 3), np.float32), rng.random((1, *STYLE_SIZE, 3), np.float32))


@pytest.fixture(scope="session", params=NETWORKS,
                ids=lambda p: f"{p[0]}{'-' + p[1] if p[1] else ''}-{p[2][0]}x{p[2][1]}")
def exported(request):
    arch, variant, size = request.param
    model, variables = random_model(arch, **({"variant": variant} if variant else {}))
    out = graphs.export_graphs(model, variables, size=size, style_size=STYLE_SIZE, meta={"arch": arch})
    return model, variables, size, out


def _session(graph):
    return ort.InferenceSession(graph.proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _close(actual, expected):
    scale = max(float(np.abs(expected).max()), 1e-12)
    assert actual.shape == expected.shape
    assert float(np.abs(actual - expected).max()) <= RTOL * scale


def test_random_weights_onnx_equals_jax(exported):
    model, variables, size, (whole, encode, with_code) = exported
    content, style = _images(size)
    expected = np.asarray(model.apply(variables, content, style, train=False)[0])
    _close(_session(whole).run(None, {"content_image": content, "style_image": style})[0], expected)
    code = _session(encode).run(None, {"style_image": style})
    split = _session(with_code).run(None, {"content_image": content, **dict(zip(encode.outputs, code))})[0]
    _close(split, expected)
    meta = {p.key: p.value for p in whole.proto.metadata_props}
    assert meta["opset"] == str(graphs.OPSET) and "NHWC" in meta["input_convention"]


def _run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("extra, needle", [
    (["--arch", "nope"], "unknown --arch"),
    (["--arch", "linear", "--variant", "r99"], "unknown --variant"),
    (["--arch", "magenta"], "cannot be exported yet"),
])
def test_bad_arch_or_variant_exit_2_nothing_written(tmp_path, capsys, extra, needle):
    out = tmp_path / "m.onnx"
    code, err = _run_cli([*extra, "--weights", "random", "--out", str(out)], capsys)
    assert code == guards.EXIT_USAGE and needle in err and not list(tmp_path.iterdir())


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep")
    code, err = _run_cli(["--arch", "adain", "--weights", "random", "--out", str(out)], capsys)
    assert code == guards.EXIT_USAGE and "--overwrite" in err and out.read_bytes() == b"keep"


def test_weights_of_another_network_exit_2(tmp_path, capsys):
    from jax_ast.pretrained.params_file import save_params
    _, variables = random_model("adain")
    weights = tmp_path / "adain.npz"
    save_params(weights, variables, meta={"arch": "adain"})
    out = tmp_path / "m.onnx"
    code, err = _run_cli(["--arch", "sanet", "--weights", str(weights), "--out", str(out), "--size", "32", "32"],
                         capsys)
    assert code == guards.EXIT_USAGE and "adain" in err and not out.exists()


def test_converter_missing_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(graphs, "converter_installed", lambda: False)
    out = tmp_path / "m.onnx"
    code, err = _run_cli(["--arch", "adain", "--weights", "random", "--out", str(out)], capsys)
    assert code == guards.EXIT_USAGE and "pip install 'jax-ast[export]'" in err and not out.exists()
