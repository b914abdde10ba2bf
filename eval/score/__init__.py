"""Pair scoring: `python -m eval.run` (`eval.score.run`) and its pairs, metrics, target cache, reports, figures
and `python -m eval.compare`."""
