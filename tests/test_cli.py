"""The command line as a user runs it: subprocesses, exit codes, one clear error line."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest


def run_cli(args: list[str], tmp_path, data_dir, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PERTDIT_CACHE": str(tmp_path / "cache"), "PERTDIT_DATA": str(data_dir),
           "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "pertdit.cli", *args], cwd=tmp_path, env=env, text=True,
                          capture_output=True, timeout=timeout)


def test_help(tmp_path, data_dir):
    result = run_cli(["--help"], tmp_path, data_dir)
    assert result.returncode == 0 and "pertdit train" in result.stdout


def test_train_then_evaluate(tmp_path, data_dir):
    run_dir = tmp_path / "run"
    result = run_cli(["train", "model=mean_shift", "logger=[]", f"paths.run_dir={run_dir}",
                      f"hydra.run.dir={run_dir}"], tmp_path, data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run_dir / "config.yaml").is_file() and (run_dir / "PRED.h5ad").is_file()
    out = tmp_path / "scores.csv"
    result = run_cli(["evaluate", str(run_dir / "PRED.h5ad"), "--out", str(out)], tmp_path, data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pcc_lnfc" in result.stdout
    assert f"written: {out} (10 measures of {run_dir / 'PRED.h5ad'})" in result.stdout
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(run_dir / "metrics.csv"), rtol=1e-6)


def test_data_reports_dropped_compounds(tmp_path, data_dir):
    result = run_cli(["data", f"hydra.run.dir={tmp_path / 'data'}"], tmp_path, data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "BRD-U60236422" in result.stdout and "348 profiles x 978 genes (26 controls, 54 compounds" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["data=file", "paths.data_dir=/nonexistent"], "data file not found: /nonexistent/"),
    (["split=cell_fold"], "only 1 cell line(s)"),
    (["split=unseen", "split.test_set=elsewhere"], "unknown test set 'elsewhere'"),
])
def test_bad_input_gives_one_clear_error(args, message, tmp_path, data_dir):
    result = run_cli(["train", "model=control", "logger=[]", *args, f"hydra.run.dir={tmp_path / 'run'}"],
                     tmp_path, data_dir)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_default_size_fast_dev_run_contract(tmp_path, data_dir):
    """`pertdit train model=crossdit trainer.fast_dev_run=true` at the authors' size, on the plate."""
    result = run_cli(["train", "model=crossdit", "trainer.fast_dev_run=true", "logger=[]",
                      "data.batch_size=8", "data.eval_batch_size=8",  # the model's size is the contract
                      f"hydra.run.dir={tmp_path / 'run'}", "trainer.enable_progress_bar=false"], tmp_path, data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "smoke test" in result.stdout and "per_sample" in result.stdout
    assert (tmp_path / "run" / "metrics.smoke.csv").is_file()
    assert not (tmp_path / "run" / "metrics.csv").exists()
