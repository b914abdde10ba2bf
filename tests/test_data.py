"""Tests for the host-side input pipeline (the jax_ast.data package): tiny images written by the tests."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jax_ast import archs, data
from jax_ast.data import CropSpec, DataError, StyleTransferStream

tfds = pytest.importorskip("tensorflow_datasets")


# ----------------------------------------------------------------------------------------------------- helpers

def _write_rgb(path: Path, height: int, width: int, seed: int) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return pixels


def _id_images(count: int, size: int = 8) -> data.ArraySource:
    """Constant images whose value is their index, so a batch tells which images it holds."""
    return data.ArraySource([np.full((size, size, 3), i, np.uint8) for i in range(count)])


_ID_SPEC = CropSpec(resize=None, resize_to=None, crop=4)


def _ids(batch_images: np.ndarray) -> list[int]:
    return [int(image[0, 0, 0]) for image in batch_images]


def _small_stream(content, style, **kwargs) -> StyleTransferStream:
    spec = CropSpec(resize="shorter", resize_to=24, crop=16, hflip=True)
    options = dict(batch_size=2, content_spec=spec, style_spec=spec, seed=0, prefetch=0)
    options.update(kwargs)
    return StyleTransferStream(content, style, **options)


@pytest.fixture
def folder(tmp_path):
    """5 RGB PNG/JPEG images of varied sizes in nested folders, plus a non-image file."""
    root = tmp_path / "images"
    sizes = [(20, 30), (40, 24), (64, 64), (33, 80), (28, 28)]
    for i, (h, w) in enumerate(sizes):
        _write_rgb(root / ("sub" if i % 2 else "") / f"img{i}.{'png' if i < 3 else 'jpg'}", h, w, seed=i)
    (root / "notes.txt").write_text("not an image")
    return root


def _assert_batch(batch, batch_size, content_crop, style_crop):
    assert set(batch) == {"content", "style"}
    assert batch["content"].shape == (batch_size, content_crop, content_crop, 3)
    assert batch["style"].shape == (batch_size, style_crop, style_crop, 3)
    assert batch["content"].dtype == np.uint8 and batch["style"].dtype == np.uint8


# ------------------------------------------------------------------------------------------------------ sources

def test_folder_source_is_sorted_recursive_and_feeds_batches(folder):
    source = data.FolderSource(folder)
    names = [p.relative_to(folder).as_posix() for p in source.paths]
    assert names == sorted(names) and len(names) == 5 and "notes.txt" not in names
    assert len(data.FolderSource(folder, recursive=False)) == 3
    stream = _small_stream(source, source, batch_size=3)
    _assert_batch(next(stream), 3, 16, 16)
    image = source.load(names.index("img0.png"))
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8


def test_missing_and_empty_folders_name_the_path(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        data.FolderSource(missing)
    empty = tmp_path / "empty_folder"
    (empty / "deeper").mkdir(parents=True)
    (empty / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="empty_folder"):
        data.FolderSource(empty)


def test_modes_come_out_uint8_rgb(tmp_path):
    grey = np.arange(20 * 24, dtype=np.uint8).reshape(20, 24)
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    rgba = np.zeros((20, 24, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :12, 3] = 255  # left half opaque red-ish, right half fully transparent -> white
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    deep = np.full((20, 24), 32896, np.uint16)  # 32896 / 65535 * 255 = 128.0
    deep[0, 0] = 65535
    Image.fromarray(deep).save(tmp_path / "deep16.png")
    source = data.FolderSource(tmp_path)
    loaded = {Path(source.describe(i)).stem: source.load(i) for i in range(len(source))}
    for image in loaded.values():
        assert image.shape == (20, 24, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(loaded["grey"], np.repeat(grey[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(loaded["rgba"][0, 0], [200, 0, 0])
    np.testing.assert_array_equal(loaded["rgba"][0, -1], [255, 255, 255])
    assert loaded["deep16"][0, 0, 0] == 255 and loaded["deep16"][5, 5, 1] == 128


def test_to_rgb_uint8_array_layouts():
    assert data.to_rgb_uint8(np.zeros((3, 5), np.uint8)).shape == (3, 5, 3)
    np.testing.assert_array_equal(data.to_rgb_uint8(np.full((2, 2, 1), 65535, np.uint16)), 255)
    np.testing.assert_array_equal(data.to_rgb_uint8(np.full((2, 2, 3), 0.5, np.float32)), 128)
    grey_alpha = np.stack([np.zeros((2, 2), np.uint8), np.full((2, 2), 0, np.uint8)], axis=2)
    np.testing.assert_array_equal(data.to_rgb_uint8(grey_alpha), 255)  # transparent -> white
    for bad in (np.zeros((2, 2, 5), np.uint8), np.full((2, 2, 3), 2.0), np.zeros((2, 2, 3), np.int64)):
        with pytest.raises(ValueError):
            data.to_rgb_uint8(bad)


def test_bundled_sources_feed_batches():
    content, style = data.BundledSource("content"), data.BundledSource("style")
    assert len(content) >= 2 and len(style) >= 2
    assert all(p.suffix == ".jpg" for p in content.paths)
    stream = _small_stream(content, style, batch_size=1, content_spec=CropSpec("square", 40, 32),
                           style_spec=CropSpec("shorter", 32, 32, hflip=True))
    _assert_batch(next(stream), 1, 32, 32)
    assert isinstance(data.open_source("style"), data.BundledSource)
    with pytest.raises(ValueError, match="content, style"):
        data.BundledSource("painting")


def test_importing_the_data_package_leaves_tensorflow_datasets_unimported():
    """tfds (and TensorFlow, which it may pull in) load only when a `TfdsSource` is first asked for."""
    probe = ("import sys, jax_ast.data as data; heavy = ('tensorflow', 'tensorflow_datasets'); "
             "print(sorted(m for m in heavy if m in sys.modules)); from jax_ast.data import TfdsSource; "
             "print(TfdsSource.__module__, 'tensorflow_datasets' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:2] == ["[]", "jax_ast.data.tfds False"], result.stdout


def test_tfds_mock_source_without_tensorflow():
    # tf_flowers: RGB images of varied sizes (some narrower than the crop), and its feature spec does not use TF
    # dtypes, so mock_data works without TensorFlow (coco/2017's mock needs TF; mnist is greyscale).
    with tfds.testing.mock_data(num_examples=6):
        source = data.TfdsSource("tf_flowers", split="train")
        assert len(source) == 6
        shapes = {source.load(i).shape[:2] for i in range(6)}
        assert len(shapes) > 1
        first = _small_stream(source, source, batch_size=3, prefetch=1)
        batches = [next(first) for _ in range(3)]
        first.close()
        again = _small_stream(data.TfdsSource("tf_flowers"), source, batch_size=3)
        for batch in batches:
            _assert_batch(batch, 3, 16, 16)
            np.testing.assert_array_equal(batch["content"], next(again)["content"])
        grey = data.TfdsSource("mnist").load(0)  # [28, 28, 1] in the dataset
        assert grey.shape == (28, 28, 3) and (grey[..., 0] == grey[..., 2]).all()
        with pytest.raises(DataError, match="label"):
            data.TfdsSource("tf_flowers", image_key="picture")


class JaxAstTestImages(tfds.core.GeneratorBasedBuilder):
    """A real (not mocked) tfds dataset prepared as array_record from PNG files: the offline path, no TensorFlow."""

    VERSION = tfds.core.Version("1.0.0")
    image_root: Path | None = None  # set by the test before preparing

    def _info(self):
        # tfds.core.DatasetInfo directly: dataset_info_from_configs() looks for metadata next to this test module.
        features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(None, None, 3))})
        return tfds.core.DatasetInfo(builder=self, features=features)

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for path in sorted(self.image_root.glob("*.png")):
            yield path.name, {"image": str(path)}


def test_tfds_prepared_array_record_dataset(tmp_path):
    JaxAstTestImages.image_root = tmp_path / "pngs"
    for i in range(5):
        _write_rgb(JaxAstTestImages.image_root / f"{i}.png", 20 + i, 30, seed=i)
    JaxAstTestImages(data_dir=tmp_path / "tfds", file_format="array_record").download_and_prepare()
    source = data.TfdsSource("jax_ast_test_images", data_dir=tmp_path / "tfds")
    assert sorted(source.load(i).shape[0] for i in range(len(source))) == [20, 21, 22, 23, 24]
    with _small_stream(source, source, batch_size=5, prefetch=2, workers=2) as stream:
        batches = [next(stream) for _ in range(3)]
    for step, batch in enumerate(batches):
        _assert_batch(batch, 5, 16, 16)
        np.testing.assert_array_equal(batch["style"], stream.batch_at(step)["style"])


def test_tfds_errors_are_single_clear_messages(tmp_path):
    with pytest.raises(DataError, match="unknown tfds dataset 'no_such_dataset_xyz'"):
        data.TfdsSource("no_such_dataset_xyz", data_dir=tmp_path)
    with pytest.raises(DataError, match="--content-dir") as info:
        data.TfdsSource("tf_flowers", data_dir=tmp_path)  # not prepared, download=False
    assert str(tmp_path) in str(info.value)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        with pytest.raises(DataError, match="pip install tensorflow-cpu"):
            data.TfdsSource("coco/2017", data_dir=tmp_path)


# ------------------------------------------------------------------------------------------------- augmentation

@pytest.mark.parametrize("spec, shape, expected_frame", [
    (CropSpec("square", 48, 24), (30, 70), (48, 48)),
    (CropSpec("shorter", 24, 24, hflip=True), (30, 70), (24, 56)),
    (CropSpec("shorter", 26, 24, random_crop=False), (70, 30), (60, 26)),
    (CropSpec(None, None, 24), (30, 70), (30, 70)),
    (CropSpec(None, None, 24), (12, 40), (24, 80)),  # smaller than the crop: shorter side upscaled to 24
    (CropSpec(None, None, 24), (5, 6), (24, 28)),
])
def test_augment_sizes(spec, shape, expected_frame):
    assert data.resized_shape(*shape, spec) == expected_frame
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    patch = data.augment(image, spec, np.random.default_rng(1))
    assert patch.shape == (24, 24, 3) and patch.dtype == np.uint8


@pytest.mark.parametrize("spec", [CropSpec("square", 48, 20), CropSpec("shorter", 30, 20),
                                  CropSpec(None, None, 20), CropSpec("shorter", 22, 20, random_crop=False)])
def test_augment_matches_resize_then_crop(spec):
    """Resampling only the crop window gives torchvision's resize-the-whole-image-then-crop pixels (up to 1/255).

    PIL computes the filter positions of a window in floating point slightly differently, so ~1% of the values
    round to the neighbouring integer.
    """
    image = np.random.default_rng(2).integers(0, 256, (13, 37, 3), dtype=np.uint8)
    height, width = data.resized_shape(13, 37, spec)
    full = np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.BILINEAR)).astype(int)
    offsets = set()
    for seed in range(8):
        patch = data.augment(image, spec, np.random.default_rng(seed)).astype(int)
        errors = {(t, l): np.abs(patch - full[t:t + 20, l:l + 20])
                  for t in range(height - 19) for l in range(width - 19)}
        best = min(errors, key=lambda offset: errors[offset].mean())
        assert errors[best].max() <= 1 and (errors[best] > 0).mean() < 0.05, (seed, best)
        offsets.add(best)
    if spec.random_crop:
        assert len(offsets) > 1
    else:
        assert offsets == {(round((height - 20) / 2), round((width - 20) / 2))}


def test_augment_hflip_flips_about_half_the_time():
    image = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    spec = CropSpec(None, None, 16, hflip=True)
    flips = [not np.array_equal(data.augment(image, spec, np.random.default_rng(s)), image) for s in range(40)]
    assert 8 <= sum(flips) <= 32
    assert all(np.array_equal(data.augment(image, spec, np.random.default_rng(s)), image[:, ::-1])
               for s, flipped in enumerate(flips) if flipped)


def test_default_augment_follows_the_originals():
    assert archs.default_augment("adain") == (CropSpec("square", 512, 256),) * 2
    assert archs.default_augment("sanet") == archs.default_augment("adain")
    assert archs.default_augment("linear") == (CropSpec("shorter", 256, 256, hflip=True),) * 2
    content, style = archs.default_augment("magenta")
    assert content == CropSpec("shorter", 258, 256, random_crop=False) and style.random_crop
    assert archs.default_augment("adain", crop=32)[0] == CropSpec("square", 64, 32)
    with pytest.raises(ValueError, match="adain, sanet, linear, magenta"):
        archs.default_augment("wct")
    for bad in (dict(resize="fit"), dict(resize="square", resize_to=16, crop=32), dict(resize=None, resize_to=8)):
        with pytest.raises(ValueError):
            CropSpec(**bad)


# ------------------------------------------------------------------------------------------------------ stream

def test_stream_is_deterministic_and_seeded(folder):
    source = data.FolderSource(folder)
    first = [next(_small_stream(source, source, seed=5)) for _ in range(1)]
    a = _small_stream(source, source, seed=5)
    b = _small_stream(source, source, seed=5, prefetch=2)
    c = _small_stream(source, source, seed=6)
    batches_a = [next(a) for _ in range(4)]
    batches_b = [next(b) for _ in range(4)]
    batches_c = [next(c) for _ in range(4)]
    b.close()
    for key in ("content", "style"):
        np.testing.assert_array_equal(first[0][key], batches_a[0][key])
        for x, y in zip(batches_a, batches_b):
            np.testing.assert_array_equal(x[key], y[key])
        assert any(not np.array_equal(x[key], z[key]) for x, z in zip(batches_a, batches_c))


def test_each_epoch_is_a_permutation_and_roles_are_independent():
    source = _id_images(6)
    stream = StyleTransferStream(source, source, batch_size=3, content_spec=_ID_SPEC, style_spec=_ID_SPEC,
                                 seed=0, prefetch=0)
    batches = [next(stream) for _ in range(4)]  # two epochs
    content = [i for b in batches for i in _ids(b["content"])]
    style = [i for b in batches for i in _ids(b["style"])]
    assert sorted(content[:6]) == sorted(content[6:]) == list(range(6))
    assert sorted(style[:6]) == list(range(6))
    assert content[:6] != content[6:] and content != style


@pytest.mark.parametrize("prefetch", [0, 2])
def test_state_restore_continues_exactly(folder, prefetch):
    source = data.FolderSource(folder)
    stream = _small_stream(source, _id_images(7, 24), seed=3, prefetch=prefetch)
    for _ in range(3):
        next(stream)
    saved = json.loads(json.dumps(stream.state()))
    expected = [next(stream) for _ in range(3)]
    stream.close()
    resumed = _small_stream(source, _id_images(7, 24), seed=3, prefetch=prefetch)
    next(resumed)  # the resumed run may have moved on before restoring
    resumed.restore(saved)
    for batch in expected:
        got = next(resumed)
        for key in ("content", "style"):
            np.testing.assert_array_equal(got[key], batch[key])
    assert resumed.state()["step"] == 6
    np.testing.assert_array_equal(resumed.batch_at(2)["content"], stream.batch_at(2)["content"])
    resumed.close()
    with pytest.raises(ValueError, match="seed: saved 3, now 4"):
        _small_stream(source, source, seed=4).restore(saved)


@pytest.mark.parametrize("count", [12, 13])
def test_processes_get_disjoint_shards(count):
    shards = []
    for process_index in range(3):
        stream = StyleTransferStream(_id_images(count), _id_images(5), batch_size=2, content_spec=_ID_SPEC,
                                     style_spec=_ID_SPEC, seed=1, process_index=process_index, process_count=3,
                                     prefetch=0)
        shards.append([i for _ in range(2) for i in _ids(next(stream)["content"])])  # one epoch: 4 per process
    seen = [i for shard in shards for i in shard]
    assert all(len(shard) == 4 for shard in shards)
    assert len(set(seen)) == 12  # disjoint; with 12 images also covering
    if count == 12:
        assert sorted(seen) == list(range(12))
    with pytest.raises(DataError, match="fewer than the 6 processes"):
        StyleTransferStream(_id_images(5), _id_images(5), batch_size=1, content_spec=_ID_SPEC,
                            style_spec=_ID_SPEC, process_index=0, process_count=6)


def test_corrupt_image_is_skipped_once_with_a_warning_and_counted(folder, tmp_path):
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    source = data.FolderSource(folder)
    assert len(source) == 6
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stream = _small_stream(source, _id_images(3, 24), batch_size=6, prefetch=0)
        batches = [next(stream) for _ in range(3)]  # each batch is one content epoch: the broken file every time
    skipped = [w for w in caught if issubclass(w.category, data.SkippedImageWarning)]
    assert len(skipped) == 1 and "broken.jpg" in str(skipped[0].message)
    assert stream.skipped == 3 and stream.state()["skipped"] == 3
    assert stream.bad_images["content"] == [str(folder / "broken.jpg")]
    for batch in batches:
        _assert_batch(batch, 6, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.SkippedImageWarning)
        prefetched = _small_stream(source, _id_images(3, 24), batch_size=6, prefetch=2)
        np.testing.assert_array_equal(next(prefetched)["content"], batches[0]["content"])
        prefetched.close()

    bad_only = tmp_path / "all_bad"
    bad_only.mkdir()
    for i in range(2):
        (bad_only / f"bad{i}.png").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.SkippedImageWarning)
        with pytest.raises(DataError, match="all 2 content images"):
            next(_small_stream(data.FolderSource(bad_only), source, prefetch=1))
