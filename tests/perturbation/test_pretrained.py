"""Pre-trained text models: downloaded on first use like any Hugging Face model, never when offline; a missing
captioner is an error where captions are required and a recorded substitution where they are not.

Nothing here reaches the network: the Hub download function is replaced by a stand-in.
"""
from __future__ import annotations

import huggingface_hub
import pytest

from pertdit.errors import RepresentationError
from pertdit.perturbation import TextRepresentation, base
from tests.helpers import compose_train


class FakeHub:
    """Stands in for `huggingface_hub.snapshot_download`: records each call; serves the tiny BERT's folder
    for `served`, raises (as the Hub does for an unknown id or without network) for any other id."""

    def __init__(self, served: dict) -> None:
        self.served, self.calls = served, []

    def __call__(self, model_id: str, **kwargs):
        self.calls.append((model_id, kwargs))
        if model_id in self.served:
            return str(self.served[model_id])
        raise OSError(f"{model_id} is not available here")


@pytest.fixture
def hub(monkeypatch, tiny_bert_dir):
    fake = FakeHub({"org/encoder": tiny_bert_dir})
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    return fake


@pytest.fixture
def online(monkeypatch):
    for name in base.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_online_a_model_id_is_fetched_from_the_hub(hub, online, no_captioner):
    rep = TextRepresentation(describer="rdkit", captioner=no_captioner, encoder_id="org/encoder")
    (model_id, kwargs), = hub.calls
    assert model_id == "org/encoder" and "local_files_only" not in kwargs  # a real download when missing
    assert "*.msgpack" in kwargs["ignore_patterns"]  # Flax/TF weights are never fetched
    assert rep.encode(["CCO"], [1.0]).tokens.shape[-1] == 32


@pytest.mark.parametrize("variable", base.OFFLINE_VARIABLES)
def test_offline_only_the_local_cache_is_looked_at(hub, online, monkeypatch, no_captioner, variable):
    monkeypatch.setenv(variable, "1")
    TextRepresentation(describer="rdkit", captioner=no_captioner, encoder_id="org/encoder")
    assert hub.calls == [("org/encoder", {"local_files_only": True})]


def test_local_files_only_keeps_it_offline_on_a_connected_machine(hub, online, no_captioner):
    TextRepresentation(describer="rdkit", captioner=no_captioner, encoder_id="org/encoder", local_files_only=True)
    assert hub.calls == [("org/encoder", {"local_files_only": True})]


def test_weights_missing_offline_name_the_model_and_how_to_get_them(hub, no_captioner):
    with pytest.raises(RepresentationError) as err:
        TextRepresentation(describer="rdkit", captioner=no_captioner, encoder_id="org/absent")
    message = str(err.value)
    assert "'org/absent'" in message and "downloads are off (HF_HUB_OFFLINE" in message
    assert "pertdit embed --download-only" in message and "encoder_local_dir" in message


def test_a_failed_download_names_the_model(hub, online, no_captioner):
    with pytest.raises(RepresentationError, match=r"'org/absent': could not be downloaded .*OSError"):
        TextRepresentation(describer="rdkit", captioner=no_captioner, encoder_id="org/absent")


def test_a_required_captioner_that_is_missing_stops_the_run(text_rep):
    with pytest.raises(RepresentationError, match=r"captioner 'pertdit-tests/no-such-captioner'"):
        text_rep(describer="captioner")


def test_auto_records_the_substitution_of_a_missing_captioner(text_rep):
    rep = text_rep(describer="auto")
    assert rep.describer_name == "rdkit"
    provenance = rep.provenance()
    assert provenance["describer"] == "rdkit" and provenance["encoder_id"] == "tiny-bert"
    assert provenance["substitution_requested"] == "captions by pertdit-tests/no-such-captioner"
    assert provenance["substitution_used"] == "RDKit-derived descriptions"
    assert "substitution_requested" not in text_rep(describer="rdkit").provenance()


@pytest.mark.parametrize(("scale", "describer"), [("full", "captioner"), ("small", "auto")])
def test_scale_full_requires_captions_and_small_allows_the_substitution(scale, describer, tmp_path):
    cfg = compose_train(["experiment=figure2a", "method=crossdit", f"scale={scale}"], tmp_path, tmp_path, tmp_path)
    assert cfg.perturbation.describer == describer


def test_the_data_module_records_the_representation_in_the_dataset(text_rep, data_dir, tmp_path):
    from pertdit.data.datamodule import PertDataModule

    dm = PertDataModule(str(data_dir / "l1000_LJP005_A375_24H_level3_n377x978.gct"),
                        str(data_dir / "l1000_LJP005_compounds.tsv"), representation=text_rep(describer="auto"),
                        cache_dir=str(tmp_path))
    dm.setup()
    recorded = dm.adata.uns["pertdit"]["representation"]
    assert recorded["substitution_used"] == "RDKit-derived descriptions" and recorded["class"] == "TextRepresentation"
