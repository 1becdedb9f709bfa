"""pertdit/conf/perturbation/*.yaml: every constructor option is a key, and each config builds its representation."""
import inspect
import pytest
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from pertdit.config import CONFIG_DIR

CONF = CONFIG_DIR / "perturbation"
VARIANTS = {
    "rdkit": {}, "text": {}, "text_pooled": {"pooled": True}, "text_wo_dosage": {"dose_prompt": False},
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_option_is_a_config_key(name):
    cfg = OmegaConf.load(CONF / f"{name}.yaml")
    options = set(inspect.signature(get_class(cfg._target_).__init__).parameters) - {"self"}
    assert set(cfg) - {"_target_"} == options


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_config_builds_its_representation(name, tiny_bert_dir, tmp_path):
    group = OmegaConf.load(CONF / f"{name}.yaml")
    cfg = OmegaConf.create({"paths": {"cache_dir": str(tmp_path)}, "perturbation": group})
    if name.startswith("text"):  # the real encoder is not on this machine: the tiny one stands in
        cfg.perturbation.encoder_local_dir = str(tiny_bert_dir)
        cfg.perturbation.captioner.model_id = "pertdit-tests/no-such-captioner"
    rep = instantiate(cfg.perturbation)
    assert rep.cache_dir == str(tmp_path)
    for key, value in VARIANTS[name].items():
        assert getattr(rep, key) == value
    features = rep.encode(["CC(=O)Oc1ccccc1C(=O)O"], [1.11])
    assert features.tokens.shape[-1] == rep.dim
