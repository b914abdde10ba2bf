"""`python -m eval.stylize`: the stylise CLI (images, mixes, masks, video, presets); see `eval.stylize.cli`."""
