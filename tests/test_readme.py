"""README stays true: its test command is exactly what CI runs, and its quick-start flags exist."""

from pathlib import Path

from train.run import build_parser

REPO = Path(__file__).resolve().parents[1]


def _bash_blocks(text):
    blocks = text.split("```bash\n")[1:]
    return [block.split("```")[0].strip() for block in blocks]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    test_command = _bash_blocks(readme)[1]
    assert "pytest" in test_command
    ci_lines = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines()]
    assert test_command in ci_lines


def test_readme_main_command_parses():
    main_command = _bash_blocks((REPO / "README.md").read_text())[0]
    argv = main_command.split("-m train.run", 1)[1].split()
    args = build_parser().parse_args(argv)
    assert (args.arch, args.loss) == ("linear", "balanced")
