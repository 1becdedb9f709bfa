"""What a user reads: each log line once, no advertisement or dependency warnings, the output paths at the
end of a run, and a help page per subcommand titled with its name."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter

import pytest

from pertdit.cli import main
from tests.test_cli import run_cli

TIMESTAMP = re.compile(r"^\[[^\]]*\]")  # "[2026-11-30 13:45:46,777]" before "[logger][LEVEL] - message"


@pytest.fixture(scope="module")
def short_run(tmp_path_factory, data_dir):
    """(run folder, all that a two-epoch `pertdit train model=prnet` printed, stdout and stderr together)."""
    tmp_path = tmp_path_factory.mktemp("console")
    run_dir = tmp_path / "run"
    result = run_cli(["train", "model=prnet", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
                      f"hydra.run.dir={run_dir}"], tmp_path, data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, result.stdout + result.stderr


def test_every_log_line_is_printed_once(short_run):
    _, output = short_run
    lines = [TIMESTAMP.sub("", line) for line in output.splitlines() if line.strip()]
    repeated = {line: n for line, n in Counter(lines).items() if n > 1 and "[INFO]" in line}
    assert not repeated
    assert not any(line.startswith("INFO: ") for line in lines), "Lightning's own handler printed a line"


def test_no_advertisement_and_no_dependency_warnings(short_run):
    _, output = short_run
    assert "litlogger" not in output
    assert "LeafSpec" not in output
    assert "smaller than the logging interval" not in output


def test_the_embedding_cache_reports_once(short_run):
    _, output = short_run
    assert len(re.findall(r"embedding cache (hit|/)|building embedding cache", output)) == 1


def test_the_end_of_a_run_says_where_it_wrote(short_run):
    run_dir, output = short_run
    tail = output[output.index("outputs:"):]
    assert f"run directory: {run_dir}" in tail
    assert f"metrics.csv: {run_dir / 'metrics.csv'}" in tail and f"PRED.h5ad: {run_dir / 'PRED.h5ad'}" in tail
    assert f"pertdit train --resume {run_dir}" in tail


def test_the_test_measures_are_printed_once(short_run):
    _, output = short_run
    assert output.count("per_sample") == 1  # our table; Lightning's duplicate test table is off


@pytest.mark.parametrize("command", ["train", "data", "embed"])
def test_each_configured_subcommand_has_its_own_help_page(command, capsys):
    assert main([command, "--help"]) == 0
    page = capsys.readouterr().out
    assert page.startswith(f"pertdit {command}: ")
    assert "powered by Hydra" not in page and "_target_" not in page
    assert "config groups" in page and "main keys" in page and "examples:" in page


def test_train_help_lists_every_group_with_its_options(capsys):
    main(["train", "--help"])
    page = capsys.readouterr().out
    for group, option in (("model", "prnet"), ("preset", "cpu_quick"), ("method", "crossdit"),
                          ("scale", "full"), ("experiment", "figure2a"), ("diffusion", "authors"),
                          ("callbacks", "none")):
        assert re.search(rf"^  {group} +.*\b{option}\b", page, re.M), group
    assert "--resume RUN_DIR" in page


def test_collect_help_is_not_cut_mid_sentence():
    done = subprocess.run([sys.executable, "-m", "experiments.collect", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0
    import experiments.collect

    first_paragraph = " ".join(experiments.collect.__doc__.split("\n\n")[0].split())
    assert first_paragraph.endswith(".") and first_paragraph in " ".join(done.stdout.split())
