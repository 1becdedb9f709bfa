"""The full-data commands as a user runs them: `synth-release` then `data data=geo_synthetic`, and the flags of
`pertdit embed`."""

from __future__ import annotations

import json
import re

import pytest

from tests.test_cli import run_cli


@pytest.mark.slow  # two CLI processes; `make test` runs the same commands in tests/test_bench.py (datascale, --quick)
def test_synth_release_then_data_reads_it_through_the_geo_path(tmp_path, data_dir):
    release = tmp_path / "release"
    result = run_cli(["synth-release", "--profiles", "500", "--out", str(release)], tmp_path, data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "test fixture" in result.stdout and "pertdit data data=geo_synthetic" in result.stdout
    meta = json.loads((release / "synthetic_release.json").read_text())
    assert meta["fixture"] is True and meta["profiles"] == 500 and meta["landmarks"] == 978
    result = run_cli(["data", "data=geo_synthetic", f"paths.data_dir={release}", f"hydra.run.dir={tmp_path / 'd'}"],
                     tmp_path, data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r"dataset: (\d+) profiles x 978 genes", result.stdout)
    assert found and 0 < int(found.group(1)) < 500  # the poscon, shRNA and untreated wells are filtered


def test_embed_download_only_resolves_the_weights_and_stops(tmp_path, data_dir, tiny_bert_dir):
    result = run_cli(["embed", "--download-only", "perturbation=text", "perturbation.describer=rdkit",
                      f"perturbation.encoder_local_dir={tiny_bert_dir}", f"hydra.run.dir={tmp_path / 'e'}"],
                     tmp_path, data_dir)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"encoder: {tiny_bert_dir}" in result.stdout
    assert not (tmp_path / "cache" / "embeddings").exists()  # nothing embedded
