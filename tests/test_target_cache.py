"""Per-image targets in `eval.run` (`eval.score.target_cache`): the LRU by bytes, and scores equal to the per-pair
path."""

import concurrent.futures
import dataclasses
import tracemalloc

import jax.numpy as jnp
import numpy as np
import pytest

import jax_ast.losses as L
from eval.score import pairs
from eval.score import run as eval_run
from eval.score.config import parse_config
from eval.score.target_cache import ByteLRU, TargetStore, bucket, tree_nbytes
from jax_ast.data import FolderSource, bundled_dir
from jax_ast.ops import gram

SIZE, STEP, N_PAIRS = 32, 8, 20
pytestmark = pytest.mark.filterwarnings("ignore:load_vgg.*RANDOMLY INITIALISED:UserWarning")


def _array(kib: int, value: float = 0.0) -> np.ndarray:
    return np.full(kib * 256, value, np.float32)  # kib KiB


# ------------------------------------------------------------------------------------------ the LRU

def test_byte_lru_evicts_the_least_recently_used_and_never_exceeds_its_bound():
    cache = ByteLRU(10 * 1024)
    for key in "abcd":
        cache.put(key, {"x": _array(3)})
    assert list("bcd") == [k for k in "abcd" if k in cache] and cache.nbytes == 9 * 1024  # "a" went first
    assert cache.get("b") is not None  # "b" is now the most recently used: "c" goes next
    cache.put("e", (_array(2), _array(1)))
    assert [k for k in "abcde" if k in cache] == ["b", "d", "e"] and cache.evictions == 2
    cache.put("huge", _array(11))  # larger than the whole cache: not kept, nothing evicted for it
    assert "huge" not in cache and len(cache) == 3
    cache.put("d", _array(1))  # replacing a value frees its old bytes first
    assert cache.nbytes == (3 + 3 + 1) * 1024
    assert cache.get("zzz") is None and (cache.hits, cache.misses) == (1, 1)
    rng = np.random.default_rng(0)
    for step in range(200):
        cache.put(int(rng.integers(50)), _array(int(rng.integers(1, 6))))
        assert cache.nbytes == sum(tree_nbytes(cache.get(k)) for k in list(cache._values)) <= 10 * 1024, step
    with pytest.raises(ValueError, match="capacity_bytes must be >= 0"):
        ByteLRU(-1)


def test_bucket_sizes_are_few_and_bounded():
    assert [bucket(n, 2, 16) for n in (1, 2, 3, 5, 9, 16, 40)] == [2, 2, 4, 8, 16, 16, 16]


def _fake_store(capacity_bytes: int) -> TargetStore:
    """A store whose 'network' turns image k (all pixels = k) into a 64 KiB row of k's, counting its calls."""
    def compute(images, step):
        assert step % 2 == 0 and step >= min(len(images), 8)
        return {"row": np.repeat(images[:, :1, 0, 0], 64 * 256, axis=1)}

    return TargetStore({"content": compute}, ByteLRU(capacity_bytes), step_size=8, n_devices=2, identity=SIZE)


def _images(indices):
    return np.asarray(indices, np.float32)[:, None, None, None] * np.ones((1, 2, 2, 3), np.float32)


def test_store_computes_each_image_once_while_cached_and_again_after_eviction():
    store = _fake_store(capacity_bytes=1024 * 1024)  # 16 rows of 64 KiB
    indices = [3, 1, 3, 3, 7, 1]
    rows = store.rows("content", indices, _images(indices))
    np.testing.assert_array_equal(rows["row"][:, 0], indices)
    assert rows["row"].shape == (6, 64 * 256) and store.computed["content"] == 3  # 3 distinct images
    store.rows("content", [7, 3], _images([7, 3]))
    assert store.computed["content"] == 3  # both cached
    small = _fake_store(capacity_bytes=2 * 64 * 1024)  # two rows
    small.rows("content", [1, 2, 3], _images([1, 2, 3]))  # 1 is evicted by 3, but this chunk still has it
    rows = small.rows("content", [1, 3], _images([1, 3]))
    np.testing.assert_array_equal(rows["row"][:, 0], [1, 3])
    assert small.computed["content"] == 4 and small.cache.evictions >= 1


def test_peak_memory_does_not_grow_with_the_number_of_pairs():
    def peak(n_chunks: int) -> int:
        store = _fake_store(capacity_bytes=1024 * 1024)
        rng = np.random.default_rng(0)
        tracemalloc.start()
        for _ in range(n_chunks):  # 8 pairs per chunk from 1000 images: nearly every row is new
            indices = [int(i) for i in rng.integers(1000, size=8)]
            store.rows("content", indices, _images(indices))
            assert store.cache.nbytes <= store.cache.capacity_bytes
        peak_bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak_bytes

    few, many = peak(10), peak(100)
    assert many < 1.2 * few, (few, many)  # 10x the pairs, the same peak (the cache is full after 2 chunks)


# ------------------------------------------------------------------------ the losses' targets split

def test_terms_from_targets_equal_feature_terms_and_check_their_inputs():
    rng = np.random.default_rng(0)
    feats = [{layer: jnp.asarray(rng.uniform(size=(2, 6, 6, 4)), jnp.float32) for layer in ("relu1_2", "relu3_3")}
             for _ in range(3)]
    content, style, output = feats
    terms = ("content", "classic", "classic_hw", "classic_chw", "bound", "balanced", "mean_std")
    layers = {"style_layers": ("relu1_2", "relu3_3"), "content_layers": ("relu3_3",)}
    expected = {f"classic_{norm}": sum(jnp.mean(jnp.square(gram(style[k], norm) - gram(output[k], norm)), axis=(1, 2))
                                       for k in layers["style_layers"]) for norm in ("hw", "chw")}
    targets = (L.content_targets(content, layers=("relu3_3",)), L.style_targets(style, layers=layers["style_layers"]))
    values = L.terms_from_targets(*targets, output, terms=terms, **layers)
    reference = L.feature_terms(content, style, output, terms=terms, **layers)
    assert values.keys() == reference.keys()
    for name, value in values.items():
        np.testing.assert_array_equal(value, reference[name], err_msg=name)
    for name in expected:  # the cached un-normalised Gram, divided as `jax_ast.ops.gram` divides
        np.testing.assert_allclose(values[name], expected[name], rtol=1e-6, err_msg=name)
    one_style = L.style_targets({k: v[:1] for k, v in style.items()}, layers=layers["style_layers"])
    broadcast = L.terms_from_targets(None, one_style, output, terms=("balanced",), **layers)["balanced"]
    assert broadcast.shape == (2,)
    with pytest.raises(ValueError, match=r"layer 'relu1_2': style targets .* do not match \(channel counts differ\)"):
        L.terms_from_targets(None, targets[1], {k: v[..., :3] for k, v in output.items()}, terms=("classic",),
                             **layers)
    with pytest.raises(ValueError, match="the content term needs content features"):
        L.terms_from_targets(None, targets[1], output, terms=("content",), **layers)
    with pytest.raises(ValueError, match="unknown loss term 'nope'"):
        L.terms_from_targets(*targets, output, terms=("nope",), **layers)


# ---------------------------------------------------------------------- eval: cached == per pair

@pytest.fixture(scope="module")
def chunks():
    sources = [pairs.ImageCache(FolderSource(bundled_dir(role)), SIZE, 64) for role in ("content", "style")]
    pairing = pairs.Pairing(len(sources[0].source), len(sources[1].source), seed=0)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return [pairs.load_chunk(list(range(start, min(start + STEP, N_PAIRS))), pairing, *sources, pool)
                for start in range(0, N_PAIRS, STEP)]


def _scores(cfg, chunks, store):
    scorer, stylizer = eval_run.make_scorer(cfg), eval_run.make_stylizer(cfg, STEP)
    timings = dict.fromkeys(("targets", "stylize", "score", "stylize_score"), 0.0)
    results = [eval_run.stylize_and_score(stylizer, scorer, chunk, alpha=1.0, clip=True, precision="default",
                                          step_size=STEP, timings=timings, targets=store) for chunk in chunks]
    return np.concatenate([outputs for outputs, _ in results]), {
        name: np.concatenate([metrics[name] for _, metrics in results]) for name in scorer.names}


@pytest.mark.parametrize("arch", ["identity", "adain", "linear"])
def test_cached_scores_equal_the_per_pair_path(arch, chunks):
    model_flags = {"identity": [], "adain": ["--checkpoint", "random"],
                   "linear": ["--checkpoint", "random", "--variant", "r31"]}[arch]
    argv = ["--arch", arch, *model_flags, "--pairs", str(N_PAIRS),
            "--out", "unused", "--content-dir", str(bundled_dir("content")), "--style-dir", str(bundled_dir("style")),
            "--size", str(SIZE), "--loss-vgg-weights", "random", "--batch-size", str(STEP)]
    cfg = parse_config(argv)
    assert cfg.target_cache_mb > 0  # on by default
    indices = [(c, s) for chunk in chunks for c, s in zip(chunk.content_indices, chunk.style_indices)]
    assert len({c for c, _ in indices}) < len(indices) and len({s for _, s in indices}) < len(indices)  # repeats
    scorer, stylizer = eval_run.make_scorer(cfg), eval_run.make_stylizer(cfg, STEP)
    outputs, expected = _scores(cfg, chunks, None)
    # 2 MiB holds about one style's Grams at any size (1.4 MB for VGG-16's four style layers): evictions.
    for mib in (64, 2):
        store = eval_run.make_target_store(dataclasses.replace(cfg, target_cache_mb=mib), scorer, stylizer, STEP)
        cached_outputs, scores = _scores(cfg, chunks, store)
        np.testing.assert_allclose(cached_outputs, outputs, rtol=1e-6, atol=1e-7)
        for name in scorer.names:
            np.testing.assert_allclose(scores[name], expected[name], rtol=1e-6, atol=0, err_msg=f"{name} {mib} MiB")
        assert store.cache.nbytes <= mib * 2 ** 20
        n_contents, n_styles = len({c for c, _ in indices}), len({s for _, s in indices})
        if mib == 64:  # each image's targets (and each style's code) computed once
            assert store.computed == {"content": n_contents, "style": n_styles,
                                      **({"code": n_styles, "content_code": n_contents} if arch != "identity" else {})}
        else:
            assert store.cache.evictions > 0 and store.computed["style"] > n_styles
    if arch == "identity":
        assert np.all(expected["content/total"] == 0.0)  # exact zeros stay exact


def test_target_cache_flag_is_validated(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        parse_config(["--arch", "identity", "--pairs", "1", "--out", str(tmp_path / "o"), "--content-dir",
                      str(tmp_path), "--style-dir", str(tmp_path), "--target-cache-mb", "-1"])
    assert info.value.code == 2 and "--target-cache-mb must be >= 0, got -1" in capsys.readouterr().err
    assert parse_config(["--arch", "identity", "--pairs", "1", "--out", str(tmp_path / "o"), "--content-dir",
                         str(tmp_path), "--style-dir", str(tmp_path), "--target-cache-mb", "0"]).target_cache_mb == 0
