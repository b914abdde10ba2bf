"""The Gradio page: inputs on the left, the result beside them, every message in the status line.

Offline by construction: no analytics, no share link, system fonts only (the default theme would fetch Google
Fonts), and every asset served by the local Gradio server. Uploads are plain files read by `jax_ast.imageio`
(the CLI's pixel limits), not images decoded by Gradio, so a bad file is a message, not a server error.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
import numpy as np

from eval.app.session import MAX_SIZE, PageError, Request, Session, parse_weights, style_list
from jax_ast import archs, color, imageio

SAMPLES = Path(imageio.__file__).resolve().parent / "samples"
CONTENTS, STYLES = SAMPLES / "content", SAMPLES / "style"
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
MONO_FONTS = ("ui-monospace", "monospace")


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.suffix.lower() in imageio.IMAGE_EXTENSIONS)


def _run(session: Session, out_dir: Path, content_upload: str | None, content_pick: str | None,
         style_uploads: list[str] | None, style_picks: list[str] | None, weights_text: str, arch: str,
         variant: str, weights: str, alpha: float, preserve: str, size: float) -> Iterator[tuple]:
    """One press of the button, as (result, download, content, styles, status) updates; errors become status."""
    try:
        content = content_upload or (str(CONTENTS / content_pick) if content_pick else None)
        if not content:
            raise PageError("no content image: upload one or pick a bundled photo")
        request = Request(content=Path(content), styles=style_list(style_uploads, style_picks, STYLES),
                          style_weights=parse_weights(weights_text or ""), arch=arch,
                          variant=(variant or "").strip() or None, weights=(weights or "").strip(),
                          alpha=float(alpha), preserve_color=preserve, size=int(size))
        if session.will_compile(request):
            yield None, None, None, None, ("**Compiling** the network for this image size and alpha (the first "
                                           "call of each; it takes longer, once), then stylising...")
        else:
            yield None, None, None, None, "stylising..."
        result = session.stylize(request)
    except PageError as error:
        yield None, None, None, None, (f"**Error:** {error}")
        return
    path = imageio.save_image(out_dir / f"stylized_{time.strftime('%H%M%S')}_{time.perf_counter_ns() % 10**6}.png",
                              result.image)
    yield (_uint8(result.image), str(path), _uint8(result.content), [_uint8(style) for style in result.styles],
           (result.message))


def _uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def build(session: Session | None = None) -> gr.Blocks:
    """The page's Blocks (not launched)."""
    session = session or Session()
    out_dir = Path(tempfile.mkdtemp(prefix="jax_ast_app_"))
    with gr.Blocks(title="jax-ast: style transfer", analytics_enabled=False) as page:
        gr.Markdown("## jax-ast: arbitrary style transfer\nA content photo and one or more styles (weights "
                    "mix them); the default network is Magenta's mobile model installed with jax-ast.")
        with gr.Row():
            with gr.Column(scale=1):
                content_upload = gr.File(label="content photo (upload)", type="filepath", elem_id="content-upload")
                content_pick = gr.Dropdown(_names(CONTENTS), value="chelsea_cat.jpg", label="or a bundled photo",
                                           elem_id="content-pick")
                style_uploads = gr.File(label="style images (upload, one or more)", type="filepath",
                                        file_count="multiple", elem_id="style-upload")
                style_picks = gr.CheckboxGroup(_names(STYLES), label="bundled paintings", elem_id="style-pick")
                weights_text = gr.Textbox(label="style weights, one per style (uploads first; empty: equal)",
                                          elem_id="style-weights")
                with gr.Accordion("network", open=False):
                    arch = gr.Dropdown(list(archs.names()), value="magenta", label="network (--arch)", elem_id="arch")
                    variant = gr.Textbox(value="mobile", label="variant (--variant)", elem_id="variant")
                    weights = gr.Textbox(label="weights: params.npz or release folder (empty: installed model)",
                                         elem_id="weights")
                alpha = gr.Slider(0.0, 1.0, value=1.0, step=0.05, label="alpha (style strength)", elem_id="alpha")
                preserve = gr.Radio(list(color.PRESERVE_COLOR_METHODS), value="none", label="colour preservation",
                                    elem_id="preserve")
                size = gr.Slider(64, MAX_SIZE, value=256, step=32, label="output size (shorter side, px)",
                                 elem_id="size")
                button = gr.Button("Stylise", variant="primary", elem_id="run")
            with gr.Column(scale=1):
                status = gr.Markdown("", elem_id="status")
                result = gr.Image(label="result", type="numpy", format="png", interactive=False, elem_id="result",
                                  height=420)
                download = gr.File(label="PNG download", interactive=False, elem_id="download")
                with gr.Row():
                    content_view = gr.Image(label="content", type="numpy", interactive=False, elem_id="content-view",
                                            height=200)
                    style_view = gr.Gallery(label="styles", interactive=False, elem_id="style-view", height=200,
                                            columns=2, object_fit="contain")
        inputs = [content_upload, content_pick, style_uploads, style_picks, weights_text, arch, variant, weights,
                  alpha, preserve, size]
        outputs = [result, download, content_view, style_view, status]

        def run(*values: Any) -> Iterator[tuple]:
            yield from _run(session, out_dir, *values)

        button.click(run, inputs, outputs, concurrency_limit=1)
        alpha.release(run, inputs, outputs, concurrency_limit=1)
    return page


def theme() -> gr.themes.Base:
    """The default look with system fonts: nothing is fetched from a font CDN."""
    return gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(MONO_FONTS))
