"""`python -m eval.stylize`: the stylise CLI (images, mixes, masks, video, presets); see `eval.stylize.cli`.
`python -m eval.stylize.contact_sheet` lays outputs out as a contents x styles sheet."""
