"""Host-side training input (being split into modules; everything is re-exported here)."""

from jax_ast.data.stream import *  # noqa: F401,F403
from jax_ast.data.stream import __getattr__  # noqa: F401
