"""The weights boundary: reading original checkpoints, caching/downloading with checksums, name tables.

(Being written; see the per-network modules in this package.)
"""
