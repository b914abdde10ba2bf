"""`python -m eval.run` and its modules: per-pair metrics vs direct references, resume, figures, memory."""

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import jax_ast.losses as L
from eval.common import layout, records
from eval.score import analysis, compare, extremes, pairs, report
from eval.score import metrics as pair_metrics
from eval.score import run as eval_run
from jax_ast import compilation_cache
from jax_ast.data import FolderSource, bundled_dir
from jax_ast.pretrained import load_vgg

REPO = Path(__file__).resolve().parents[1]
SIZE = 32
BASE = ["--content-dir", str(bundled_dir("content")), "--style-dir", str(bundled_dir("style")),
        "--size", str(SIZE), "--loss-vgg-weights", "random", "--batch-size", "12", "--no-progress"]
LAYERS = L.PAPER_STYLE_LAYERS
pytestmark = pytest.mark.filterwarnings("ignore:load_vgg.*RANDOMLY INITIALISED:UserWarning")


def _run(out, arch, n, *extra):
    argv = ["--arch", arch, "--pairs", str(n), "--out", str(out), *BASE, *extra]
    assert eval_run.main(argv) == 0
    return json.loads((out / layout.SUMMARY_JSON).read_text())


def _rows(out):
    with open(out / layout.PAIRS_CSV, newline="") as stream:
        return list(csv.DictReader(stream))


def _images(row_list):
    """float32 content, style and output batches of CSV rows, loaded independently of eval.run."""
    sources = FolderSource(bundled_dir("content")), FolderSource(bundled_dir("style"))
    contents, styles = (np.stack([pairs.center_square(src.load(int(r[key])), SIZE) for r in row_list]) / 255.0
                        for src, key in zip(sources, ("content_index", "style_index")))
    return contents.astype(np.float32), styles.astype(np.float32)


@pytest.fixture(scope="module")
def identity_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("identity")
    eval_run._CACHE.clear()  # a fresh scorer, so that its trace count is this run's alone
    return out, _run(out, "identity", 30, "--top-k", "3", "--thumb-size", "24", "--benchmark")


# ------------------------------------------------------------------------------------------- end to end

def test_csv_has_one_row_per_pair_with_the_seeded_pairing(identity_run):
    out, summary = identity_run
    rows = _rows(out)
    assert [int(r["pair"]) for r in rows] == list(range(30))
    pairing = pairs.Pairing(12, 14, seed=0)
    assert [(int(r["content_index"]), int(r["style_index"])) for r in rows] == [pairing(k) for k in range(30)]
    assert len({(r["content_index"], r["style_index"]) for r in rows}) == 30  # no repeated pair below n_c * n_s
    assert "classic/relu1_2" in rows[0] and "balanced/total" in rows[0] and "classic_hw/relu4_3" in rows[0]
    run_json = json.loads((out / layout.RUN_JSON).read_text())
    assert run_json["pairing"]["seed"] == 0 and run_json["n_contents"] == 12 and run_json["n_styles"] == 14
    assert summary["pairs"] == {"requested": 30, "done": 30, "skipped": 0, "complete": True}
    benchmark = summary["benchmark"]  # 2 batches: the second one gives the steady-state rate
    assert benchmark["pairs"] == 30 and benchmark["pairs_per_second"] > 0 and benchmark["batch_size"] == 16


def test_unreadable_images_are_skipped_with_the_reason(tmp_path):
    content_dir = tmp_path / "content"
    content_dir.mkdir()
    for path in sorted(bundled_dir("content").iterdir())[:3]:
        shutil.copy(path, content_dir / path.name)
    (content_dir / "broken.jpg").write_bytes(b"not a jpeg")
    argv = ["--arch", "identity", "--pairs", "12", "--out", str(tmp_path / "out"), *BASE, "--no-figures"]
    argv[argv.index("--content-dir") + 1] = str(content_dir)
    assert eval_run.main(argv) == 0
    with open(tmp_path / "out" / layout.SKIPPED_CSV, newline="") as stream:
        skipped = list(csv.DictReader(stream))
    assert skipped and all(r["content"] == "broken.jpg" and "broken.jpg" in r["reason"] for r in skipped)
    assert sorted(int(r["pair"]) for r in [*skipped, *_rows(tmp_path / "out")]) == list(range(12))


def test_values_equal_direct_calls_of_the_losses(identity_run):
    out, _ = identity_run
    rows = _rows(out)[::3]  # from both batches, the second one padded
    contents, styles = _images(rows)
    vgg, params = load_vgg("vgg16_slim", "random", taps=("relu1_2", "relu2_2", "relu3_3", "relu4_3"))
    terms = L.loss_terms(vgg, {"params": params}, contents, styles, contents)
    feats = [vgg.apply({"params": params}, x) for x in (styles, contents)]
    terms["classic_hw"], parts = L.classic_style_loss(*feats, gram_norm="hw")
    terms.update({k.replace("classic", "classic_hw"): v for k, v in parts.items()})
    for name in ("content", "classic", "classic_hw", "bound", "balanced", "mean_std"):
        layers = L.PAPER_CONTENT_LAYERS if name == "content" else LAYERS
        for layer in (*layers, "total"):
            expected = np.asarray(terms[name if layer == "total" else f"{name}/{layer}"])
            actual = np.array([float(r[f"{name}/{layer}"]) for r in rows])
            np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=1e-6, err_msg=f"{name}/{layer}")


def test_identity_image_metrics_and_the_trace_count(identity_run):
    out, _ = identity_run
    rows = _rows(out)
    assert all(float(r["psnr"]) == pair_metrics.PSNR_CAP_DB for r in rows)
    np.testing.assert_allclose([float(r["ssim"]) for r in rows], 1.0, atol=1e-6)
    assert all(float(r["content/total"]) == 0.0 for r in rows)
    contents, styles = _images(rows)
    lab = [_np_color_distance(_np_lab(c), _np_lab(s)) for c, s in zip(contents, styles)]
    np.testing.assert_allclose([float(r["color_lab"]) for r in rows], lab, rtol=1e-4)
    scorer = next(v for k, v in eval_run._CACHE.items() if k[0] == "scorer")
    assert scorer.trace_count == 1  # 30 pairs = 16 + 14 (padded, masked): one compilation


def test_summary_stats_and_pearson_match_numpy(identity_run):
    out, summary = identity_run
    rows = _rows(out)
    for name in ("classic/total", "balanced/total", "classic/relu3_3"):
        values = np.array([float(r[name]) for r in rows])
        stats = summary["stats"][name]
        np.testing.assert_allclose([stats["mean"], stats["median"], stats["std"]],
                                   [values.mean(), np.median(values), values.std()], rtol=1e-12)
    for layer in LAYERS:
        x, y = (np.array([float(r[f"{t}/{layer}"]) for r in rows]) for t in ("bound", "classic"))
        assert summary["pearson_classic_vs_bound"][layer] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
        assert np.all(y <= x * (1 + 1e-5))  # the bound bounds the classic loss
    assert summary["table"]["header"][2:5] == ["classic mean", "classic median", "classic std"]
    assert "| identity |" in (out / layout.SUMMARY_MD).read_text()


def test_figures_are_valid_pngs(identity_run):
    out, summary = identity_run
    names = {"hist_classic", "hist_balanced", "scatter_bound", "ist", "extremes_classic", "extremes_balanced"}
    assert set(summary["figures"]) == names
    for path in summary["figures"].values():
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG"


def test_extreme_pairs_are_the_lowest_and_highest_rows(identity_run):
    out, summary = identity_run
    rows = _rows(out)
    for loss in report.GRID_LOSSES:
        values = np.array([float(r[loss]) for r in rows])
        kept = summary["extremes"][loss]
        assert [e["pair"] for e in kept["lowest"]] == list(np.argsort(values, kind="stable")[:3])
        assert [e["pair"] for e in kept["highest"]] == list(np.argsort(-values, kind="stable")[:3])


def test_ist_report_ranks_styles_by_mean_balanced_loss(identity_run):
    out, _ = identity_run
    rows = _rows(out)
    ist = json.loads((out / layout.IST_JSON).read_text())
    assert sum(s["pairs"] for s in ist["styles"]) == 30
    means = {}
    for r in rows:
        means.setdefault(int(r["style_index"]), []).append(float(r["balanced/total"]))
    ranked = sorted((np.mean(v), k) for k, v in means.items() if len(v) >= 2)
    assert [e["style"] for e in ist["over_stylised"]] == [k for _, k in ranked[:10]]
    assert [e["style"] for e in ist["under_stylised"]] == [k for _, k in ranked[::-1][:10]]
    classic_means = [np.mean([float(r["classic/total"]) for r in rows if int(r["style_index"]) == k])
                     for _, k in ranked]
    assert ist["classic_spread"]["max_over_min"] == pytest.approx(max(classic_means) / min(classic_means))
    assert "Most under-stylised" in (out / layout.IST_MD).read_text()


def test_copy_style_has_zero_balanced_and_classic_loss(tmp_path):
    summary = _run(tmp_path, "copy-style", 10, "--no-figures")
    rows = _rows(tmp_path)
    assert len(rows) == 10
    for name in ("balanced/total", "classic/total", "color_lab", "color_rgb"):
        np.testing.assert_allclose([float(r[name]) for r in rows], 0.0, atol=1e-6)
    assert summary["stats"]["balanced/total"]["max"] <= 1e-6


def test_adain_with_random_weights_matches_the_model_applied_directly(tmp_path):
    _run(tmp_path, "adain", 5, "--checkpoint", "random", "--no-figures")
    rows = _rows(tmp_path)
    assert len(rows) == 5 and all(float(r["psnr"]) < pair_metrics.PSNR_CAP_DB for r in rows)
    fused = next(v for k, v in eval_run._CACHE.items() if k[0] == "fused_targets")  # --target-cache-mb on by default
    assert fused.trace_count == 1  # stylised and scored in one program, compiled once
    from eval.inference.loading import load_model
    model, variables = load_model("adain", "random", seed=0)
    contents, styles = _images(rows[:2])
    outputs = np.clip(np.asarray(model.apply(variables, contents, styles)[0]), 0.0, 1.0)
    vgg, params = load_vgg("vgg16_slim", "random", taps=("relu1_2", "relu2_2", "relu3_3", "relu4_3"))
    terms = L.loss_terms(vgg, {"params": params}, contents, styles, outputs)
    for name in ("classic/total", "balanced/total", "content/total", "bound/relu2_2"):
        np.testing.assert_allclose([float(r[name]) for r in rows[:2]], terms[name.replace("/total", "")],
                                   rtol=1e-5, err_msg=name)


# --------------------------------------------------------------------------------------------- resume

def test_interrupted_run_resumes_without_duplicates(tmp_path, identity_run):
    first = _run(tmp_path, "identity", 40, "--max-pairs-this-run", "17", "--no-figures")
    assert first["pairs"]["done"] == 17 and not first["pairs"]["complete"]
    with open(tmp_path / layout.PAIRS_CSV, "a") as stream:  # a row cut off by a kill mid-write
        stream.write("17,3,4,some.jpg,oth")
    (tmp_path / layout.EXTREMES_NPZ).unlink()  # killed before the heaps were saved
    summary = _run(tmp_path, "identity", 40, "--top-k", "3", "--thumb-size", "24")
    rows = _rows(tmp_path)
    assert [int(r["pair"]) for r in rows] == list(range(40))
    assert summary["pairs"]["complete"] and summary["recomputed_extremes"]
    previous = {r["pair"]: r for r in _rows(identity_run[0])}
    for r in rows[:30]:  # same pairs and values as the uninterrupted run
        assert r["style"] == previous[r["pair"]]["style"]
        assert float(r["classic/total"]) == pytest.approx(float(previous[r["pair"]]["classic/total"]), rel=1e-5)
    values = np.array([float(r["balanced/total"]) for r in rows])
    assert [e["pair"] for e in summary["extremes"]["balanced/total"]["highest"]] == list(np.argsort(-values)[:3])
    assert _run(tmp_path, "identity", 40, "--no-figures")["pairs"]["done"] == 40  # nothing left: no new rows
    assert len(_rows(tmp_path)) == 40


def test_resume_with_other_settings_is_refused(tmp_path, capsys):
    _run(tmp_path, "identity", 3, "--no-figures")
    argv = ["--arch", "copy-style", "--pairs", "3", "--out", str(tmp_path), *BASE]
    assert eval_run.main(argv) == 2
    assert "other settings" in capsys.readouterr().err


def test_csv_log_truncates_a_partial_line_and_refuses_duplicates(tmp_path):
    path = tmp_path / "log.csv"
    with records.CsvLog(path, ["pair", "value"]) as log:
        log.append([(0, 1.5), (1, float("nan"))])
        with pytest.raises(records.RecordsError, match="another run"):
            records.CsvLog(path, ["pair", "value"])
    with open(path, "a") as stream:
        stream.write("2,0.2")
    with records.CsvLog(path, ["pair", "value"]) as log:
        assert log.done == {0, 1} and log.truncated == len("2,0.2")
        with pytest.raises(records.RecordsError, match="already recorded"):
            log.append([(1, 2.0)])
    with pytest.raises(records.RecordsError, match="other columns"):
        records.CsvLog(path, ["pair", "other"])
    assert path.read_text() == "pair,value\n0,1.5\n1,nan\n"


def _start(out, n, size, *extra, env=None):
    """`python -m eval.run` in a subprocess on 1 CPU device, with a cheap loss network (relu1_1 only)."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", **(env or {}))
    argv = [sys.executable, "-m", "eval.run", "--arch", "identity", "--pairs", str(n), "--out", str(out),
            *BASE[:4], "--size", str(size), "--loss-vgg-weights", "random", "--style-layers", "relu1_1",
            "--content-layers", "relu1_1", "--no-progress", *extra]
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_killed_run_resumes_without_duplicates(tmp_path):
    # the killed process gets a compilation cache of its own: the session's is for processes that finish
    process = _start(tmp_path, 1000, 32, "--batch-size", "8", "--no-figures",
                     env={compilation_cache.FOLDER_ENV: str(tmp_path / "killed-xla")})
    csv_path, deadline = tmp_path / layout.PAIRS_CSV, time.monotonic() + 60
    while records.count_rows(csv_path) < 40 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.kill()
    process.wait()
    assert 0 < records.count_rows(csv_path) < 1000, "the run was not interrupted mid-way"
    resumed = _start(tmp_path, 1000, 32, "--batch-size", "8", "--top-k", "2")
    assert resumed.wait() == 0, resumed.stderr.read().decode()[-2000:]
    assert [int(r["pair"]) for r in _rows(tmp_path)] == list(range(1000))
    summary = json.loads((tmp_path / layout.SUMMARY_JSON).read_text())
    assert summary["pairs"]["complete"] and Path(summary["figures"]["extremes_balanced"]).is_file()


def test_peak_memory_is_flat_in_the_number_of_pairs(tmp_path):
    """Peak RSS of whole runs at N=200 and N=2000 (48 px, 1 device): within 20 %.

    Holding every image of the N=2000 run would add ~2000 * 3 * 27 KB = 166 MB to a ~430 MB process (checked:
    such a leak fails this test, 579 vs 433 MiB).
    """
    def peak_rss_mib(n):
        process = _start(tmp_path / str(n), n, 48, "--no-figures")
        _, status, usage = os.wait4(process.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, process.stderr.read().decode()[-2000:]
        assert len(_rows(tmp_path / str(n))) == n
        return usage.ru_maxrss / 1024.0

    small, large = peak_rss_mib(200), peak_rss_mib(2000)
    assert large <= 1.2 * small, (small, large)


# ------------------------------------------------------------------------------------- unit references

def _np_ssim(x, y):
    """Direct SSIM: explicit 11x11 Gaussian-weighted statistics at every valid window position."""
    taps = np.exp(-0.5 * ((np.arange(11) - 5) / 1.5) ** 2)
    window = np.outer(taps, taps) / np.outer(taps, taps).sum()
    c1, c2, values = 0.01 ** 2, 0.03 ** 2, []
    for channel in range(x.shape[-1]):
        for i in range(x.shape[0] - 10):
            for j in range(x.shape[1] - 10):
                a, b = x[i:i + 11, j:j + 11, channel], y[i:i + 11, j:j + 11, channel]
                ma, mb = (window * a).sum(), (window * b).sum()
                va, vb = (window * (a - ma) ** 2).sum(), (window * (b - mb) ** 2).sum()
                cov = (window * (a - ma) * (b - mb)).sum()
                values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return np.mean(values)


def _np_lab(rgb):
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array(pair_metrics.SRGB_TO_XYZ).T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def _np_color_distance(a, b):
    stats = [np.concatenate([x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0)]) for x in (a, b)]
    return np.sqrt(np.sum((stats[0] - stats[1]) ** 2))


def test_ssim_and_psnr_match_direct_formulas():
    rng = np.random.default_rng(0)
    x = rng.random((2, 16, 19, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1).astype(np.float32)
    y[1] = rng.random((16, 19, 3))
    ssim = np.asarray(pair_metrics.ssim(jnp.asarray(x), jnp.asarray(y)))
    np.testing.assert_allclose(ssim, [_np_ssim(x[i].astype(np.float64), y[i].astype(np.float64)) for i in range(2)],
                               rtol=1e-4, atol=1e-5)
    psnr = np.asarray(pair_metrics.psnr(jnp.asarray(x), jnp.asarray(y)))
    np.testing.assert_allclose(psnr, 10 * np.log10(1 / ((x - y) ** 2).mean(axis=(1, 2, 3))), rtol=1e-5)
    assert float(pair_metrics.psnr(jnp.asarray(x), jnp.asarray(x))[0]) == pair_metrics.PSNR_CAP_DB
    np.testing.assert_allclose(pair_metrics.ssim(jnp.asarray(x), jnp.asarray(x)), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="at least 11 px"):
        pair_metrics.ssim(jnp.zeros((1, 10, 20, 3)), jnp.zeros((1, 10, 20, 3)))


def test_lab_conversion_matches_known_values():
    colours = jnp.asarray([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    expected = [[100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [53.24, 80.09, 67.20], [32.30, 79.19, -107.86]]
    np.testing.assert_allclose(pair_metrics.rgb_to_lab(colours), expected, atol=0.02)


def test_pearson_r_equals_numpy_corrcoef():
    rng = np.random.default_rng(1)
    x = rng.lognormal(size=500) * 1e8
    y = 0.7 * x + rng.normal(scale=1e8, size=500)
    assert analysis.pearson_r(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-12)
    assert np.isnan(analysis.pearson_r(np.ones(5), np.arange(5.0)))


def test_pairing_is_a_permutation_of_the_grid_per_epoch():
    pairing = pairs.Pairing(7, 5, seed=3)
    first = [pairing(k) for k in range(35)]
    assert sorted(first) == [(c, s) for c in range(7) for s in range(5)]
    assert sorted(pairing(k) for k in range(35, 70)) == sorted(first) and first != [pairing(k) for k in range(35, 70)]
    assert first != [pairs.Pairing(7, 5, seed=4)(k) for k in range(35)]


def test_extreme_keeper_keeps_the_k_extremes_with_ties_by_pair(tmp_path):
    rng = np.random.default_rng(2)
    values = rng.integers(0, 20, size=300).astype(float)  # many ties
    keeper = extremes.ExtremeKeeper(["loss"], k=5, thumb_size=4)
    image = np.zeros((4, 4, 3), np.float32)
    for start in range(0, 300, 7):
        batch = list(range(start, min(start + 7, 300)))
        keeper.update(batch, {"loss": values[batch]}, *([np.stack([image] * len(batch))] * 3))
    truth = extremes.true_extremes(np.arange(300), values, 5)
    keeper.save(tmp_path / "x.npz")
    reloaded = extremes.ExtremeKeeper(["loss"], k=5, thumb_size=4)
    reloaded.load(tmp_path / "x.npz")
    for kept in (keeper, reloaded):
        for side in extremes.SIDES:
            assert [pair for pair, _, _ in kept.entries("loss", side)] == truth[side]


def test_compare_sets_runs_side_by_side(identity_run, tmp_path, capsys):
    _run(tmp_path / "copy", "copy-style", 4, "--no-figures")
    capsys.readouterr()
    assert compare.main([str(identity_run[0]), str(tmp_path / "copy")]) == 0
    text = capsys.readouterr().out
    lines = [line for line in text.splitlines() if line.startswith("| identity") or line.startswith("| copy-style")]
    assert len(lines) == 4  # the loss table and the Pearson table
    classic_mean = identity_run[1]["stats"]["classic/total"]["mean"]
    assert analysis.format_number(classic_mean) in text
    with pytest.raises(SystemExit):
        compare.main([str(tmp_path / "missing")])


def test_cli_usage_errors(tmp_path, capsys):
    for argv, message in ((["--arch", "cyclegan"], "valid choices: adain, sanet, linear, magenta, identity"),
                          (["--arch", "adain"], "needs --weights"),
                          (["--arch", "identity", "--checkpoint", "random"], "drop --weights"),
                          (["--arch", "identity", "--style-layers", "relu9_9"], "unknown taps")):
        with pytest.raises(SystemExit) as exit_info:
            eval_run.main([*argv, "--pairs", "2", "--out", str(tmp_path), *BASE])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    shutil.rmtree(tmp_path, ignore_errors=True)
