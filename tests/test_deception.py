"""Artist classifier, deception rate and the CompVis import: a tiny end-to-end run on 3 bundled paintings.

The end-to-end tests use the real ImageNet VGG-16 (frozen, 32 px crops): the known result they check,
copy-style near 1 and identity at chance, needs features that tell paintings apart. The CompVis import
is checked on a checkpoint written here in the original TF-slim variable names with random values
(plumbing: the values do not matter, the logits are compared with a torch re-implementation).
"""

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from eval.common import layout
from eval.deception import classifier as artist_classifier
from eval.deception import data as artist_data
from eval.deception import rate as deception
from eval.score import compare
from eval.score import run as eval_run
from jax_ast.data import DataError, bundled_dir
from jax_ast.models.artist import ArtistClassifier, merge_params, split_backbone
from jax_ast.pretrained.compvis import WeightsError, load_compvis, read_class_list

PAINTINGS = ("hokusai_great_wave.jpg", "munch_the_scream.jpg", "van_gogh_starry_night.jpg")
CONTENTS = ("chelsea_cat.jpg", "coffee_cup.jpg", "golden_gate_bridge_fog.jpg")
TINY = ["--size", "32", "--batch-size", "8", "--steps", "24", "--log-every", "12", "--checkpoint-every", "12",
        "--eval-crops", "4", "--learning-rate", "0.01"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("deception")
    for kind, names in (("style", PAINTINGS), ("content", CONTENTS)):
        (root / kind).mkdir()
        for name in names:
            shutil.copy(bundled_dir(kind) / name, root / kind / name)
    return root


@pytest.fixture(scope="module")
def classifier(folders):
    workdir = folders / "classifier"
    assert artist_classifier.main(["train", "--workdir", str(workdir), "--data-dir", str(folders / "style"),
                                   *TINY]) == 0
    return workdir


def _eval_run(folders, arch):
    out = folders / arch
    if not out.exists():
        assert eval_run.main(["--arch", arch, "--content-dir", str(folders / "content"), "--style-dir",
                              str(folders / "style"), "--pairs", "9", "--size", "32", "--out", str(out),
                              "--no-figures", "--no-progress", "--loss-vgg-weights", "random"]) == 0
    return out


# ----------------------------------------------------------------------------------------------- bootstrap

def test_bootstrap_ci_is_the_mean_over_groups_with_an_interval_around_it():
    assert deception.bootstrap_ci([np.ones(5, bool)]) == (1.0, 1.0, 1.0)
    rate, low, high = deception.bootstrap_ci([np.ones(4), np.zeros(100)], samples=500)
    assert rate == 0.5  # the mean over groups (artists), not the pooled 4 / 104
    rng = np.random.default_rng(0)
    hits = rng.random(400) < 0.3
    rate, low, high = deception.bootstrap_ci([hits], samples=2000, seed=1)
    assert low < rate < high and high - low == pytest.approx(2 * 1.96 * np.sqrt(0.3 * 0.7 / 400), rel=0.2)
    with pytest.raises(ValueError):
        deception.bootstrap_ci([np.zeros(0)])


# ------------------------------------------------------------------------------------------------- data

def test_labels_from_subfolders_and_csv_keep_artists_with_enough_works(tmp_path):
    for artist, count in (("a", 3), ("b", 2), ("c", 1)):
        (tmp_path / artist).mkdir()
        for i in range(count):
            shutil.copy(bundled_dir("style") / PAINTINGS[i], tmp_path / artist / f"{artist}{i}.jpg")
    classes, works = artist_data.discover(tmp_path, labels="subfolder", min_works=2)
    assert classes == ["a", "b"] and [len(works[c]) for c in classes] == [3, 2]
    train, heldout = artist_data.split_works(classes, works, mode="image", holdout=0.34, seed=0)
    assert [w.label for w in heldout] == [0, 1] and len(train) == 3
    assert not {w.path for w in train} & {w.path for w in heldout}
    flat = tmp_path / "flat"
    flat.mkdir()
    for artist in "abc":
        for path in (tmp_path / artist).iterdir():
            shutil.copy(path, flat / path.name)
    (tmp_path / "info.csv").write_text("filename,artist,style\n" + "".join(
        f"{p.name},{p.name[0]},x\n" for p in flat.iterdir()))
    assert artist_data.discover(flat, labels="csv", info_csv=tmp_path / "info.csv", min_works=2)[0] == ["a", "b"]
    with pytest.raises(DataError, match="at least 5 works"):
        artist_data.discover(tmp_path, labels="subfolder", min_works=5)
    with pytest.raises(DataError, match="does not exist"):
        artist_data.discover(tmp_path / "missing")


def test_region_split_holds_out_the_right_columns():
    classes, works = artist_data.discover(bundled_dir("style"), labels="file")
    train, heldout = artist_data.split_works(classes, works, mode="region", holdout=0.25, seed=0)
    assert len(classes) == len(train) == len(heldout) == 14
    assert {w.columns for w in train} == {(0.0, 0.75)} and {w.columns for w in heldout} == {(0.75, 1.0)}


def test_split_backbone_round_trips():
    params = {"backbone": {"conv1_1": 1, "conv5_3": 2}, "logits": 3}
    trainable, frozen = split_backbone(params, 12)
    assert trainable == {"logits": 3, "backbone": {"conv5_3": 2}} and merge_params(trainable, frozen) == params
    assert "backbone" not in split_backbone(params, 13)[0]


def test_compiled_head_init_is_the_eager_init_bit_for_bit():
    """The trainer's initial head (`_random_head`, one compiled program) is `model.init`'s head exactly, so
    classifiers train from the numbers they did before (a shallow backbone keeps the eager init cheap)."""
    import jax  # noqa: PLC0415

    model = ArtistClassifier(num_classes=5, taps=("relu1_1",))
    eager = model.init(jax.random.PRNGKey(3), np.zeros((1, 16, 16, 3), np.float32))["params"]
    compiled = artist_classifier._random_head(model, 16, 3)
    assert set(compiled) == set(eager) - {"backbone"} == {"norm", "logits"}
    jax.tree.map(np.testing.assert_array_equal, compiled, {name: eager[name] for name in compiled})


# ------------------------------------------------------------------------------------------- end to end

def test_tiny_classifier_learns_held_out_regions_and_resumes(classifier):
    heldout = json.loads((classifier / layout.HELDOUT_JSON).read_text())
    assert heldout["n"] == 3 * 4 and heldout["top1"] >= 0.66 and heldout["top5"] == 1.0
    steps = [json.loads(line)["step"] for line in (classifier / "metrics.jsonl").read_text().splitlines()]
    assert steps == [12, 24]
    assert artist_classifier.main(["train", "--workdir", str(classifier), "--data-dir",
                                   str(classifier.parent / "style"), *TINY, "--steps", "30"]) == 0
    steps = [json.loads(line)["step"] for line in (classifier / "metrics.jsonl").read_text().splitlines()]
    assert steps == [12, 24, 30]  # resumed from step 24, not restarted


def test_copy_style_deceives_and_identity_is_at_chance(folders, classifier):
    results = {}
    for arch in ("copy-style", "identity"):
        out = _eval_run(folders, arch)
        assert deception.main(["--classifier", str(classifier), "--pairs-from", str(out), "--bootstrap", "200"]) == 0
        results[arch] = json.loads((out / layout.DECEPTION_JSON).read_text())
    assert results["copy-style"]["rate"] >= 0.99 and results["copy-style"]["n"] == 9
    # Each photo meets each of the 3 paintings once and its prediction ignores the painting: exactly 1/3.
    assert results["identity"]["rate"] == pytest.approx(1 / 3)
    artist = results["identity"]["per_artist"]["munch_the_scream"]
    assert artist["n"] == 3 and artist["real_top1"] is not None
    table = compare.comparison_markdown([compare.load_summary(folders / a) for a in ("copy-style", "identity")])
    assert "deception" in table and "0.333" in table


def test_cli_refuses_bad_input_and_existing_results(folders, classifier, tmp_path, capsys):
    out = _eval_run(folders, "identity")
    (tmp_path / layout.DECEPTION_JSON).write_text("{}")
    with pytest.raises(SystemExit) as exit_info:
        deception.main(["--classifier", str(classifier), "--pairs-from", str(out), "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert (tmp_path / layout.DECEPTION_JSON).read_text() == "{}"
    assert deception.main(["--classifier", str(tmp_path / "none"), "--pairs-from", str(out), "--out",
                           str(tmp_path / "o")]) == 2
    assert "no artist classifier" in capsys.readouterr().err
    assert artist_classifier.main(["train", "--workdir", str(tmp_path / "w"), "--data-dir",
                                   str(tmp_path / "none"), "--labels", "subfolder", "--split", "image"]) == 2
    assert "does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ CompVis import

def _write_split(path, artists):
    """A pandas `to_hdf` fixed-format frame as CompVis's split.hdf5 stores it (written with h5py)."""
    index = [f"{artist}_{i}".encode() for label, artist in enumerate(artists) for i in range(2)]
    labels = np.asarray([[label] for label in range(len(artists)) for _ in range(2)], np.int64)
    with h5py.File(path, "w") as handle:
        group = handle.create_group("df")
        group["axis0"], group["axis1"] = np.asarray([b"label", b"split"]), np.asarray(index)
        group["block0_items"], group["block0_values"] = np.asarray([b"label"]), labels


def _slim_variables(n_classes, width, rng):
    shapes = {f"vgg_16/conv{b}/conv{b}_{k}": (3, 3, cin, cout) for b, k, cin, cout in [
        (1, 1, 3, 64), (1, 2, 64, 64), (2, 1, 64, 128), (2, 2, 128, 128), (3, 1, 128, 256), (3, 2, 256, 256),
        (3, 3, 256, 256), (4, 1, 256, 512), (4, 2, 512, 512), (4, 3, 512, 512), (5, 1, 512, 512),
        (5, 2, 512, 512), (5, 3, 512, 512)]}
    shapes.update({"vgg_16/fc6": (7, 7, 512, width), "vgg_16/fc7": (1, 1, width, width),
                   "vgg_16/fc8": (1, 1, width, n_classes)})
    variables = {"global_step": np.asarray(790000)}
    for scope, shape in shapes.items():
        fan_in = np.prod(shape[:3])
        variables[f"{scope}/weights"] = (rng.standard_normal(shape) * np.sqrt(2 / fan_in)).astype(np.float32)
        variables[f"{scope}/biases"] = (rng.standard_normal(shape[-1]) * 0.1).astype(np.float32)
    variables["vgg_16/conv1/conv1_1/weights"] /= 128.0  # inputs are 0-255
    return variables


def _torch_slim_vgg16(variables, images):
    """TF-slim vgg_16 (RGB x 255 - mean, max pooling, fc as convs) in torch: the reference logits."""
    x = torch.tensor(images * 255.0 - np.asarray([123.68, 116.779, 103.939], np.float32)).permute(0, 3, 1, 2)
    for b, convs in enumerate((2, 2, 3, 3, 3), start=1):
        for k in range(1, convs + 1):
            w = torch.tensor(variables[f"vgg_16/conv{b}/conv{b}_{k}/weights"]).permute(3, 2, 0, 1)
            x = torch.relu(torch.nn.functional.conv2d(x, w, torch.tensor(variables[f"vgg_16/conv{b}/conv{b}_{k}/biases"]),
                                                      padding=1))
        x = torch.nn.functional.max_pool2d(x, 2)
    for name, relu in (("fc6", True), ("fc7", True), ("fc8", False)):
        w = torch.tensor(variables[f"vgg_16/{name}/weights"]).permute(3, 2, 0, 1)
        x = torch.nn.functional.conv2d(x, w, torch.tensor(variables[f"vgg_16/{name}/biases"]))
        x = torch.relu(x) if relu else x
    return x[:, :, 0, 0].numpy()


def test_compvis_checkpoint_in_original_names_imports_exactly(tmp_path):
    rng = np.random.default_rng(0)
    artists = ["claude-monet", "edvard-munch", "vincent-van-gogh"]
    variables = _slim_variables(len(artists), 16, rng)
    np.savez(tmp_path / "model.ckpt-790000.npz", **variables)
    _write_split(tmp_path / "split.hdf5", artists)
    assert read_class_list(tmp_path / "split.hdf5") == artists
    model, params, meta = load_compvis(tmp_path / "model.ckpt-790000.npz", tmp_path / "split.hdf5")
    assert isinstance(model, ArtistClassifier) and meta["classes"] == artists and meta["size"] == 224
    images = rng.random((2, 224, 224, 3)).astype(np.float32)
    logits = np.asarray(model.apply({"params": params}, images))
    np.testing.assert_allclose(logits, _torch_slim_vgg16(variables, images), rtol=1e-3, atol=1e-3)
    with pytest.raises(WeightsError, match="unknown class list"):
        read_class_list(tmp_path / "classes.csv")
    (tmp_path / "two.txt").write_text("a\nb\n")
    with pytest.raises(WeightsError, match="3 classes"):
        load_compvis(tmp_path / "model.ckpt-790000.npz", tmp_path / "two.txt")
    del variables["vgg_16/fc7/biases"]
    np.savez(tmp_path / "broken.npz", **variables)
    with pytest.raises(WeightsError, match="vgg_16/fc7/biases"):
        load_compvis(tmp_path / "broken.npz", tmp_path / "split.hdf5")
