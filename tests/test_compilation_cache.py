"""The persistent compilation cache of the entry points: in $JAX_AST_CACHE/xla (or $JAX_AST_XLA_CACHE), off by
flag or environment."""

import os
import subprocess
import sys
from pathlib import Path

from jax_ast import compilation_cache
from train.run import build_parser

REPO = Path(__file__).resolve().parents[1]
# A VGG-16 forward and backward pass (about 1 s to compile here), kept whatever its compile time: a faster machine
# could compile it in less than MIN_COMPILE_SECONDS.
_COMPILE = """
import sys
import jax, jax.numpy as jnp
from jax_ast import compilation_cache
from jax_ast.models.vgg import VGG
print(compilation_cache.enable())
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
net = VGG("vgg16_slim", taps=("relu4_3",))
shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))  # no eager init: seconds
params = jax.tree.map(lambda leaf: jnp.full(leaf.shape, 0.01, leaf.dtype), shapes)
loss = lambda p, x: jnp.sum(net.apply(p, x)["relu4_3"] ** 2)
jax.jit(jax.grad(loss)).lower(params, jnp.ones((2, 32, 32, 3))).compile()
"""


def _compile_in_subprocess(cache: Path, **extra: str) -> str:
    environment = {k: v for k, v in os.environ.items()
                   if k not in (compilation_cache.DISABLE_ENV, compilation_cache.FOLDER_ENV)}
    environment.update(JAX_AST_CACHE=str(cache), PYTHONPATH=str(REPO), **extra)
    result = subprocess.run([sys.executable, "-c", _COMPILE], env=environment, capture_output=True, text=True,
                            timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def test_compiled_programs_are_kept_under_jax_ast_cache(tmp_path):
    assert _compile_in_subprocess(tmp_path) == str(tmp_path / "xla")
    assert any((tmp_path / "xla").iterdir())  # the compiled program was written there


def _enable_recording(monkeypatch) -> dict:
    """enable() with jax.config.update recorded instead of applied (this session's cache stays as it is)."""
    updates = {}
    monkeypatch.setattr(compilation_cache.jax.config, "update", lambda name, value: updates.__setitem__(name, value))
    monkeypatch.delenv(compilation_cache.DISABLE_ENV, raising=False)
    return updates


def test_its_own_folder_variable_moves_it(tmp_path, monkeypatch):
    updates = _enable_recording(monkeypatch)
    monkeypatch.setenv("JAX_AST_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv(compilation_cache.FOLDER_ENV, str(tmp_path / "b"))
    assert compilation_cache.enable() == tmp_path / "b"
    assert updates["jax_compilation_cache_dir"] == str(tmp_path / "b")
    assert updates["jax_compilation_cache_max_size"] == compilation_cache.MAX_BYTES  # bounded, hence locked
    monkeypatch.delenv(compilation_cache.FOLDER_ENV)
    assert compilation_cache.enable() == tmp_path / "a" / "xla"


def test_the_tests_never_write_the_users_cache():
    # conftest.py points this session at a fresh folder of its own
    assert compilation_cache.folder() != compilation_cache.cache_dir() / "xla"
    assert compilation_cache.folder().name.startswith("jax_ast_test_xla_")


def test_the_environment_and_the_flag_turn_it_off(monkeypatch):
    monkeypatch.setenv(compilation_cache.DISABLE_ENV, "1")
    assert compilation_cache.disabled_by_env()
    assert compilation_cache.enable() is None and compilation_cache.enable(False) is None
    assert build_parser().parse_args(["--no-compilation-cache"]).no_compilation_cache
    assert not build_parser().parse_args([]).no_compilation_cache


def test_unfinished_entries_are_dropped_complete_ones_kept(tmp_path):
    """An entry without its last-use stamp (its writer killed in between, or an unbounded older folder) would
    make JAX's bounded cache fail on every later write: enable() deletes it, and a stamp without an entry."""
    for name, data in (("done-cache", b"x" * 10), ("done-atime", (5).to_bytes(8, "little")),
                       ("killed-cache", b"x" * 3), ("lost-atime", (7).to_bytes(8, "little"))):
        (tmp_path / name).write_bytes(data)
    assert compilation_cache.drop_unfinished_entries(tmp_path) == ["killed-cache", "lost-atime"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != compilation_cache.LOCK_FILE) == [
        "done-atime", "done-cache"]
    assert compilation_cache.drop_unfinished_entries(tmp_path / "missing") == []


def test_a_folder_that_cannot_be_locked_is_left_alone(tmp_path, monkeypatch):
    """A read-only cache folder (here: the lock cannot be created) does not stop a run."""
    (tmp_path / "killed-cache").write_bytes(b"x")

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / compilation_cache.LOCK_FILE))

    monkeypatch.setattr(compilation_cache.filelock.FileLock, "acquire", refuse)
    assert compilation_cache.drop_unfinished_entries(tmp_path) == []
    assert (tmp_path / "killed-cache").exists()


def test_enable_drops_a_killed_writers_entry_first(tmp_path, monkeypatch):
    """A folder holding an entry without a stamp: enable() removes it before JAX writes there."""
    _enable_recording(monkeypatch)
    monkeypatch.setenv(compilation_cache.FOLDER_ENV, str(tmp_path))
    (tmp_path / "jit_killed-0123-cache").write_bytes(b"partial")
    assert compilation_cache.enable() == tmp_path
    assert not (tmp_path / "jit_killed-0123-cache").exists()
