"""Plug-ins that tests register from outside `jax_ast` (``JAX_AST_PLUGINS=tests.plugins.tinynet``)."""
