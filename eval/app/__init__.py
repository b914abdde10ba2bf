"""The local stylisation page (`python -m eval.app`): `session` holds the work, `page` the Gradio layout."""
