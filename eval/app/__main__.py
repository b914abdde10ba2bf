"""`python -m eval.app [--port N]`: the local stylisation page on 127.0.0.1 (needs ``pip install "jax-ast[app]"``)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import sys

from eval.common import guards

HOST = "127.0.0.1"
INSTALL = 'the page needs Gradio: pip install "jax-ast[app]" (or pip install gradio)'


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = guards.Parser(prog="python -m eval.app", description=__doc__)
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    if args.port is not None and not 0 < args.port < 65536:
        parser.error(f"--port must be in [1, 65535], got {args.port}")
    if importlib.util.find_spec("gradio") is None:
        print(f"error: {INSTALL}", file=sys.stderr)
        return guards.EXIT_USAGE
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no usage reports
    from eval.app import page  # noqa: PLC0415 (imports gradio, which is optional)

    port = args.port or free_port()
    blocks = page.build()
    blocks.queue(default_concurrency_limit=1)
    _, url, _ = blocks.launch(server_name=HOST, server_port=port, share=False, inbrowser=False, quiet=True,
                              prevent_thread_lock=True, theme=page.theme(), ssr_mode=False, footer_links=[],
                              mcp_server=False, enable_monitoring=False)
    print(f"jax-ast page: http://{HOST}:{port}/ (Ctrl+C stops it)", flush=True)
    try:
        blocks.block_thread()
    except KeyboardInterrupt:
        pass
    return guards.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
