"""Image reading/writing (`jax_ast.imageio`) and colour preservation (`jax_ast.color`); tiny images made here."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from jax_ast import color, imageio
from jax_ast.imageio import ImageError


def _rgb(height=24, width=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write(tmp_path, name, image, **options):
    path = tmp_path / name
    image.save(path, **options)
    return path


# ------------------------------------------------------------------------------------------- conversions

def test_rgb_png_is_exact(tmp_path):
    pixels = _rgb()
    loaded = imageio.load_image(_write(tmp_path, "a.png", Image.fromarray(pixels)))
    assert loaded.dtype == np.float32 and loaded.shape == (24, 40, 3)
    np.testing.assert_array_equal(loaded, pixels.astype(np.float32) / 255.0)


def test_sixteen_bit_png_keeps_full_precision(tmp_path):
    grey = (np.arange(24 * 40, dtype=np.uint32).reshape(24, 40) * 67 + 3).astype(np.uint16)
    path = _write(tmp_path, "g16.png", Image.fromarray(grey))
    assert Image.open(path).mode.startswith("I;16")
    loaded = imageio.load_image(path)
    expected = grey.astype(np.float32) / 65535.0
    for channel in range(3):
        np.testing.assert_allclose(loaded[..., channel], expected, rtol=0, atol=1e-7)
    # values 67/65535 apart stay distinct: no truncation to 8 bits
    assert len(np.unique(loaded[..., 0])) == grey.size


def test_thirty_two_bit_integer_image_with_sixteen_bit_values(tmp_path):
    values = np.linspace(0, 65535, 24 * 40).reshape(24, 40).astype(np.int32)
    path = _write(tmp_path, "i32.tif", Image.fromarray(values))
    assert Image.open(path).mode == "I"
    np.testing.assert_allclose(imageio.load_image(path)[..., 1], values / 65535.0, atol=1e-7)
    out_of_range = _write(tmp_path, "neg.tif", Image.fromarray(values - 100))
    with pytest.raises(ImageError, match="neg.tif.*only 16-bit"):
        imageio.load_image(out_of_range)


def test_float_image_accepted_only_in_unit_range(tmp_path):
    values = np.linspace(0, 1, 24 * 40, dtype=np.float32).reshape(24, 40)
    np.testing.assert_allclose(imageio.load_image(_write(tmp_path, "f.tif", Image.fromarray(values)))[..., 2], values)
    with pytest.raises(ImageError, match=r"f2.tif.*\[0, 1\]"):
        imageio.load_image(_write(tmp_path, "f2.tif", Image.fromarray(values * 255)))


def test_rgba_is_composited_onto_white(tmp_path):
    rgba = np.zeros((24, 40, 4), np.uint8)
    rgba[..., :3] = (200, 40, 10)
    rgba[:, :10, 3] = 255  # opaque
    rgba[:, 10:20, 3] = 0  # transparent -> white
    rgba[:, 20:, 3] = 128  # half
    loaded = imageio.load_image(_write(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    np.testing.assert_allclose(loaded[0, 0], np.array([200, 40, 10]) / 255.0)
    np.testing.assert_allclose(loaded[0, 15], [1.0, 1.0, 1.0])
    half = (np.array([200, 40, 10]) * 128 + 255 * 127) / 255.0 / 255.0
    np.testing.assert_allclose(loaded[0, 30], half, atol=1.5 / 255)


def test_grey_with_alpha_and_plain_grey(tmp_path):
    grey = _rgb()[..., 0]
    loaded = imageio.load_image(_write(tmp_path, "l.png", Image.fromarray(grey, "L")))
    for channel in range(3):
        np.testing.assert_array_equal(loaded[..., channel], grey / np.float32(255.0))
    la = np.stack([grey, np.zeros_like(grey)], axis=2)
    np.testing.assert_array_equal(imageio.load_image(_write(tmp_path, "la.png", Image.fromarray(la, "LA"))), 1.0)


def test_one_bit_image(tmp_path):
    bits = _rgb()[..., 0] > 127
    loaded = imageio.load_image(_write(tmp_path, "b.png", Image.fromarray(bits).convert("1")))
    np.testing.assert_array_equal(loaded[..., 0], bits.astype(np.float32))


def test_palette_and_transparent_palette(tmp_path):
    palette_image = Image.fromarray(_rgb()).quantize(colors=16)
    path = _write(tmp_path, "p.png", palette_image)
    assert Image.open(path).mode == "P"
    expected = np.asarray(palette_image.convert("RGB"), np.float32) / 255.0
    np.testing.assert_array_equal(imageio.load_image(path), expected)
    transparent_index = int(np.asarray(palette_image)[0, 0])
    gif = _write(tmp_path, "t.gif", palette_image, transparency=transparent_index)
    loaded = imageio.load_image(gif)
    mask = np.asarray(palette_image) == transparent_index
    np.testing.assert_array_equal(loaded[mask], 1.0)
    np.testing.assert_array_equal(loaded[~mask], expected[~mask])


def test_cmyk_jpeg(tmp_path):
    pixels = _rgb()
    path = _write(tmp_path, "c.jpg", Image.fromarray(pixels).convert("CMYK"), quality=100)
    assert Image.open(path).mode == "CMYK"
    loaded = imageio.load_image(path)
    assert loaded.shape == (24, 40, 3)
    np.testing.assert_array_equal(loaded, np.asarray(Image.open(path).convert("RGB"), np.float32) / 255.0)
    # the round trip through CMYK + JPEG stays near the original colours (not inverted, not garbage)
    assert np.mean(np.abs(loaded - pixels / 255.0)) < 0.1


def test_exif_orientation_is_applied(tmp_path):
    pixels = _rgb(24, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = _write(tmp_path, "r.png", Image.fromarray(pixels), exif=exif.tobytes())
    loaded = imageio.load_image(path)
    np.testing.assert_array_equal(loaded, np.rot90(pixels, k=-1) / np.float32(255.0))


# ----------------------------------------------------------------------------------------------- rejects

def test_truncated_jpeg(tmp_path):
    path = _write(tmp_path, "t.jpg", Image.fromarray(_rgb(48, 64)))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageError, match="t.jpg: corrupt or truncated"):
        imageio.load_image(path)


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageError, match="notes.jpg: not a recognised image format"):
        imageio.load_image(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="nope.png: file does not exist"):
        imageio.load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a directory"):
        imageio.load_image(tmp_path)


def test_tiny_image_rejected_unless_allowed(tmp_path):
    path = _write(tmp_path, "tiny.png", Image.fromarray(_rgb(10, 10)))
    with pytest.raises(ImageError, match=r"tiny.png: image is too small \(10x10\).*at least 16"):
        imageio.load_image(path)
    assert imageio.load_image(path, min_side=8).shape == (10, 10, 3)


def _png_claiming_size(path, width, height):
    """A valid tiny PNG whose header is patched to claim width x height (a decompression-bomb shape)."""
    buffer = path.with_suffix(".src.png")
    Image.fromarray(_rgb(16, 16)).save(buffer)
    data = bytearray(buffer.read_bytes())
    ihdr = data[12:29]  # chunk type + 13 bytes of IHDR data
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    return path


def test_decompression_bomb_rejected_before_decoding(tmp_path):
    ours = _png_claiming_size(tmp_path / "bomb.png", 12000, 12000)  # over our limit, under PIL's
    with pytest.raises(ImageError, match=r"bomb.png: image is too large \(12000x12000 = 144000000 pixels"):
        imageio.load_image(ours)
    pils = _png_claiming_size(tmp_path / "huge.png", 20000, 20000)  # PIL's own bomb check fires first
    with pytest.raises(ImageError, match="huge.png: image is too large"):
        imageio.load_image(pils, max_pixels=10**9)
    small = _write(tmp_path, "small.png", Image.fromarray(_rgb()))
    with pytest.raises(ImageError, match="too large"):
        imageio.load_image(small, max_pixels=100)
    with pytest.raises(ImageError, match="resizing 40x24 to 666x400 would exceed"):
        imageio.load_image(small, size=400, max_pixels=100_000)


# ------------------------------------------------------------------------------------------------ resize

def test_resize_shorter_side_matches_pil_bilinear(tmp_path):
    pixels = _rgb(24, 40)
    path = _write(tmp_path, "a.png", Image.fromarray(pixels))
    loaded = imageio.load_image(path, size=16)
    assert loaded.shape == (16, 26, 3)  # 16 * 40 / 24 = 26.67, truncated like torchvision Resize(int)
    expected = np.asarray(Image.fromarray(pixels).resize((26, 16), Image.Resampling.BILINEAR)) / np.float32(255)
    np.testing.assert_array_equal(loaded, expected)
    assert imageio.load_image(path.rename(tmp_path / "tall.png"), size=16, mode="shorter").shape == (16, 26, 3)
    portrait = _write(tmp_path, "p.png", Image.fromarray(_rgb(40, 24)))
    assert imageio.load_image(portrait, size=20).shape == (33, 20, 3)
    assert imageio.load_image(portrait, size=(20, 30), mode="exact").shape == (20, 30, 3)
    assert imageio.load_image(portrait, size=32, mode="exact").shape == (32, 32, 3)
    assert imageio.load_image(portrait, size=0).shape == (40, 24, 3)


def test_resize_sixteen_bit_in_float(tmp_path):
    ramp = np.tile(np.linspace(1000, 60000, 40), (24, 1)).astype(np.uint16)
    loaded = imageio.load_image(_write(tmp_path, "g.png", Image.fromarray(ramp)), size=16)
    assert loaded.shape == (16, 26, 3) and loaded.dtype == np.float32
    assert np.all(np.diff(loaded[0, :, 0]) > 0)  # still a strictly increasing ramp
    assert 1000 / 65535 <= loaded.min() and loaded.max() <= 60000 / 65535 + 1e-6


# -------------------------------------------------------------------------------------------- save, list

def test_save_clamps_quantises_and_creates_dirs(tmp_path):
    image = np.array([[[-1.0, 0.5, 2.0], [0.0, 1.0 / 255 * 0.49, 1.0 / 255 * 0.51]]] * 16, np.float32)
    image = np.repeat(image, 8, axis=1)
    path = imageio.save_image(tmp_path / "deep" / "dir" / "out.png", image)
    assert path.exists() and not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    written = np.asarray(Image.open(path))
    np.testing.assert_array_equal(written[0, 0], [0, 128, 255])
    np.testing.assert_array_equal(written[0, 8], [0, 0, 1])
    jpeg = imageio.save_image(tmp_path / "o.jpg", np.full((16, 16, 3), 0.5, np.float32))
    assert Image.open(jpeg).format == "JPEG"
    with pytest.raises(ValueError, match="unsupported output extension '.xyz'"):
        imageio.save_image(tmp_path / "o.xyz", image)


def test_save_then_load_round_trip(tmp_path):
    pixels = _rgb() / np.float32(255.0)
    np.testing.assert_array_equal(imageio.load_image(imageio.save_image(tmp_path / "r.png", pixels)), pixels)


def test_list_images(tmp_path):
    for name in ("b.png", "a.JPG", "sub/c.jpeg", "notes.txt", ".hidden/d.png", "sub/.e.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert imageio.list_images(tmp_path) == [tmp_path / "a.JPG", tmp_path / "b.png", tmp_path / "sub/c.jpeg"]
    assert imageio.list_images(tmp_path, recursive=False) == [tmp_path / "a.JPG", tmp_path / "b.png"]
    assert imageio.list_images(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]
    with pytest.raises(FileNotFoundError, match="missing"):
        imageio.list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="empty: no images found"):
        imageio.list_images(tmp_path / "empty")


# ------------------------------------------------------------------------------------------------ colour

def _coloured(rng, height, width, mix):
    """Pixels with correlated channels: independent uniforms through a fixed 3x3 mix, offset into [0, 1]."""
    return (rng.random((height, width, 3)) @ mix.T * 0.6).astype(np.float32)


def _mean_cov(image):
    pixels = np.asarray(image, np.float64).reshape(-1, 3)
    return pixels.mean(axis=0), np.cov(pixels, rowvar=False)


def test_coral_matches_content_mean_and_covariance():
    rng = np.random.default_rng(0)
    style = _coloured(rng, 40, 56, np.array([[1.0, 0.2, 0.0], [0.5, 0.8, 0.1], [0.1, 0.3, 0.9]]))
    content = _coloured(rng, 24, 32, np.array([[0.3, 0.9, 0.4], [0.9, 0.1, 0.2], [0.2, 0.2, 0.2]]))
    recoloured = color.coral(style, content)
    assert recoloured.shape == style.shape and recoloured.dtype == np.float32
    (mean_out, cov_out), (mean_content, cov_content) = _mean_cov(recoloured), _mean_cov(content)
    np.testing.assert_allclose(mean_out, mean_content, atol=1e-5)
    np.testing.assert_allclose(cov_out, cov_content, rtol=1e-4, atol=1e-6)
    assert np.abs(_mean_cov(style)[1] - cov_content).max() > 0.5 * np.abs(cov_content).max()  # not vacuous


def _coral_original_torch(source, target):
    """pytorch-AdaIN's coral as described in docs/architectures.md, AdaIN (CHW tensors, SVD square roots)."""
    import torch

    def flat_stats(image):
        flat = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).double().reshape(3, -1)
        return flat, flat.mean(dim=-1, keepdim=True), flat.std(dim=-1, keepdim=True)

    def mat_sqrt(matrix):
        u, d, v = torch.svd(matrix)
        return u @ torch.diag(d.pow(0.5)) @ v.t()

    source_flat, source_mean, source_std = flat_stats(source)
    target_flat, target_mean, target_std = flat_stats(target)
    source_norm = (source_flat - source_mean) / source_std
    target_norm = (target_flat - target_mean) / target_std
    source_cov = source_norm @ source_norm.t() + torch.eye(3, dtype=torch.float64)
    target_cov = target_norm @ target_norm.t() + torch.eye(3, dtype=torch.float64)
    transfer = mat_sqrt(target_cov) @ torch.inverse(mat_sqrt(source_cov)) @ source_norm
    out = transfer * target_std + target_mean
    return out.reshape(3, *source.shape[:2]).numpy().transpose(1, 2, 0)


def test_coral_match_original_reproduces_the_quirk():
    pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    style = _coloured(rng, 40, 56, np.array([[1.0, 0.2, 0.0], [0.5, 0.8, 0.1], [0.1, 0.3, 0.9]]))
    content = _coloured(rng, 24, 32, np.array([[0.3, 0.9, 0.4], [0.9, 0.1, 0.2], [0.2, 0.2, 0.2]]))
    original = color.coral(style, content, match_original=True)
    np.testing.assert_allclose(original, _coral_original_torch(style, content), atol=2e-6)
    # the un-normalised covariance scales the result's covariance by (N_content - 1) / (N_style - 1)
    ratio = (24 * 32 - 1) / (40 * 56 - 1)
    np.testing.assert_allclose(_mean_cov(original)[1], _mean_cov(content)[1] * ratio, rtol=5e-3)


def test_coral_of_grey_style_is_finite():
    rng = np.random.default_rng(2)
    grey = np.repeat(rng.random((24, 24, 1)), 3, axis=2)
    content = _coloured(rng, 24, 24, np.eye(3))
    assert np.isfinite(color.coral(grey, content)).all()


def test_preserve_luminance():
    rng = np.random.default_rng(3)
    stylized, content = rng.random((16, 20, 3)), rng.random((16, 20, 3))
    mixed = color.preserve_luminance(stylized, content)
    np.testing.assert_allclose(color.rgb_to_yiq(mixed)[..., 0], color.rgb_to_yiq(stylized)[..., 0], atol=1e-6)
    np.testing.assert_allclose(color.rgb_to_yiq(mixed)[..., 1:], color.rgb_to_yiq(content)[..., 1:], atol=1e-6)
    np.testing.assert_allclose(color.preserve_luminance(content, content), content, atol=1e-6)
    grey_content = np.repeat(content[..., :1], 3, axis=2)  # no chroma: output is grey with stylised luminance
    grey_out = color.preserve_luminance(stylized, grey_content)
    np.testing.assert_allclose(grey_out[..., 0], grey_out[..., 2], atol=1e-6)
    with pytest.raises(ValueError, match="one size"):
        color.preserve_luminance(stylized, content[:8])
