"""Config schema: paper defaults, YAML and --set layering, unknown keys and wrong types refused."""

from pathlib import Path

import pytest

from stages.config import Config, build_config, config_hash, config_to_yaml, load_config, parse_set
from stages.errors import AuxReidError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_the_duke_paper_settings():
    config = Config()
    assert (config.cluster.k1, config.cluster.k2, config.cluster.rho, config.cluster.min_samples) == (30, 6, 1.6e-3, 4)
    assert (config.cluster.scp_lambda, config.evaluate.scp_lambda) == (0.006, 0.03)
    assert (config.cluster.sts_lambda, config.cluster.sts_gamma) == (0.6, 8.0)
    assert (config.train.watl_margin, config.train.watl_lambda, config.train.iters_multiplier) == (0.5, -0.01, 0.6)
    assert (config.train.weight_id, config.train.weight_triplet) == (0.5, 0.2)
    assert (config.train.weight_soft_id, config.train.weight_soft_triplet) == (0.5, 0.8)
    assert (config.evaluate.rerank_k1, config.evaluate.rerank_k2, config.evaluate.rerank_lambda) == (20, 6, 0.3)


@pytest.mark.parametrize("name", ["duke", "mars", "synth"])
def test_load_config_shipped_files_load(name):
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.data.dataset == name


def test_load_config_mars_paper_settings():
    config = load_config(CONFIGS / "mars.yaml")
    assert config.train.rounds == 40 and config.train.triplet == "soft"
    assert not (config.cluster.scp or config.cluster.sts or config.cluster.toc)


def test_load_config_set_overrides_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("cluster:\n  eps: 0.5\n")
    config = load_config(path, ["cluster.eps=0.45", "train.triplet=soft", "cluster.relaxed=null"])
    assert config.cluster.eps == 0.45 and config.train.triplet == "soft" and config.cluster.relaxed is None


def test_build_config_unknown_key_suggests_nearest():
    with pytest.raises(AuxReidError, match=r"^x.yaml: unknown config key 'cluster.epss'; did you mean 'cluster.eps'\?$"):
        build_config(({"cluster": {"epss": 0.5}}, "x.yaml"))


def test_build_config_unknown_section_suggests_nearest():
    with pytest.raises(AuxReidError, match="unknown config key 'clustr'; did you mean 'cluster'"):
        build_config(({"clustr": {}}, "x.yaml"))


def test_build_config_wrong_type_names_key():
    with pytest.raises(AuxReidError, match=r"^--set: 'cluster.min_samples' must be int, got 'four'"):
        load_config(None, ["cluster.min_samples=four"])
    with pytest.raises(AuxReidError, match="'train.id_loss' must be one of 'rlsce', 'lsce', 'ce', got 'focal'"):
        load_config(None, ["train.id_loss=focal"])
    with pytest.raises(AuxReidError, match="'cluster.toc' must be bool"):
        load_config(None, ["cluster.toc=3"])


def test_build_config_out_of_range_is_refused():
    with pytest.raises(AuxReidError, match=r"'cluster.eps' = 1.5 is out of range; it must be in \(0, 1\)"):
        load_config(None, ["cluster.eps=1.5"])


def test_build_config_int_accepted_for_float():
    assert load_config(None, ["cluster.sts_gamma=9"]).cluster.sts_gamma == 9.0


def test_parse_set_rejects_missing_equals():
    with pytest.raises(AuxReidError, match=r"--set 'cluster.eps' is not of the form key=value"):
        parse_set(["cluster.eps"])


def test_load_config_missing_file():
    with pytest.raises(AuxReidError, match="config file nope.yaml does not exist"):
        load_config("nope.yaml")


def test_config_yaml_round_trip_keeps_hash(tmp_path):
    config = load_config(CONFIGS / "synth.yaml", ["cluster.eps=0.42"])
    path = tmp_path / "frozen.yaml"
    path.write_text(config_to_yaml(config))
    again = load_config(path)
    assert again == config and config_hash(again) == config_hash(config)
    assert config_hash(load_config(None)) != config_hash(config)
