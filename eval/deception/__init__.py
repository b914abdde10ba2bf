"""The artist classifier (`classifier`, `data`; `python -m eval.artist_classifier`) and the deception rate
(`rate`; `python -m eval.deception`)."""
