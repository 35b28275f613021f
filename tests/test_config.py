"""Config schema: paper defaults, YAML and --set layering, unknown keys and wrong types refused."""

import dataclasses
from pathlib import Path

import pytest

from stages.config import Config, TrainConfig, build_config, config_hash, config_to_yaml, load_config, parse_set
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
    assert config.train.batch_size % config.train.instances == 0


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


def test_load_config_synth_rlsce_k_lives_in_cluster():
    assert load_config(CONFIGS / "synth.yaml").cluster.rlsce_k == 20
    assert not hasattr(TrainConfig(), "rlsce_k")


def test_build_config_old_train_rlsce_k_is_an_unknown_key_pointing_at_cluster():
    with pytest.raises(AuxReidError, match=r"^config.yaml: unknown config key 'train.rlsce_k'; did you mean "
                                           r"'cluster.rlsce_k'\?$"):
        build_config(({"train": {"rlsce_k": 60}}, "config.yaml"))
    with pytest.raises(AuxReidError, match=r"^--set: unknown config key 'train.rlsce_k'; did you mean 'cluster.rlsce_k'"):
        load_config(None, ["train.rlsce_k=60"])


def test_build_config_nested_range_error_names_full_key():
    with pytest.raises(AuxReidError, match=r"^--set: 'train.lr_gamma' = 1.5 is out of range; it must be in \(0, 1\]$"):
        load_config(None, ["train.lr_gamma=1.5"])
    with pytest.raises(AuxReidError, match=r"^--set: 'evaluate.toc_penalty' = -1.0 is out of range; it must be >= 0$"):
        load_config(None, ["evaluate.toc_penalty=-1"])
    with pytest.raises(AuxReidError, match=r"^--set: 'seed' = -3 is out of range; it must be in \[0, 2\*\*32 - 1\]$"):
        load_config(None, ["seed=-3"])


def test_range_error_names_the_source_that_set_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  pad: -2\n")
    with pytest.raises(AuxReidError, match=r"^.*c.yaml: 'train.pad' = -2 is out of range; it must be >= 0$"):
        load_config(path)


def test_every_default_is_in_range():
    build_config()
    for f in dataclasses.fields(TrainConfig):
        if "check" in f.metadata:
            assert f.metadata["check"](f.default), f.name


def test_train_new_keys_defaults():
    train = Config().train
    assert (train.device, train.amp, train.channels_last) == ("auto", "off", True)
    assert (train.flip, train.pad_crop, train.pad, train.random_erasing, train.augment_per) == (
        True, True, 10, True, "frame")
    assert (train.checkpoint_every, train.log_every) == (100, 1)


@pytest.mark.parametrize("name", ["duke", "mars"])
def test_paper_configs_run_as_the_authors(name):
    """fp32 training and extraction, per-frame augmentation, evaluation every 2 rounds (best of them reported)."""
    config = load_config(CONFIGS / f"{name}.yaml")
    assert (config.train.amp, config.extract.amp) == ("off", "off")
    assert (config.train.augment_per, config.train.random_erasing) == ("frame", True)
    assert config.evaluate.every == 2
    assert (config.train.id_loss, config.train.triplet) == ("rlsce", "watl" if name == "duke" else "soft")
    assert (config.data.dense_step, config.train.rounds) == ((40, 50) if name == "duke" else (0, 40))
    assert (config.cluster.rlsce_k, config.train.iters_multiplier, config.model.stem_relu) == (60, 0.6, False)
    assert not (config.cluster.camera_norm or config.cluster.eps_every_round) and config.cluster.labels == "clustering"


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_train_device_accepts_the_known_forms(value):
    assert load_config(None, [f"train.device={value}"]).train.device == value


@pytest.mark.parametrize("key", ["train.device", "extract.device"])
@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "mps", "CPU", "cuda:0 "])
def test_device_refuses_other_forms(key, value):
    with pytest.raises(AuxReidError, match=rf"'{key}' = .* is out of range; it must be auto, cpu, cuda or cuda:N"):
        build_config(({key.split(".")[0]: {"device": value}}, "x.yaml"))


def test_train_amp_is_a_literal():
    assert load_config(None, ["train.amp='off'"]).train.amp == "off"
    with pytest.raises(AuxReidError, match=r"got False \(YAML reads unquoted off/on/no/yes as booleans; quote"):
        load_config(None, ["train.amp=off"])
    with pytest.raises(AuxReidError, match="'train.amp' must be one of 'bf16', 'fp16', 'off', got 'fp8'"):
        load_config(None, ["train.amp=fp8"])


@pytest.mark.parametrize(
    ("assignment", "requirement"),
    [
        ("train.pad=-1", ">= 0"),
        ("train.checkpoint_every=-1", r">= 0 \(0 = only at the end of the round\)"),
        ("train.log_every=0", ">= 1"),
        ("train.fixed_iters=0", r"in \[1, 100000\]"),
        ("train.lr_step_round=0", ">= 1"),
        ("train.lr_gamma=0", r"in \(0, 1\]"),
        ("train.watl_margin=-0.1", ">= 0"),
        ("train.weight_id=-1", ">= 0"),
        ("train.weight_soft_triplet=-0.5", ">= 0"),
        ("train.bn_chunk=0", ">= 1"),
        ("evaluate.sts_lambda=-1", ">= 0"),
        ("evaluate.sts_gamma=-1", ">= 0"),
    ],
)
def test_new_ranges_refuse(assignment, requirement):
    key = assignment.split("=")[0]
    with pytest.raises(AuxReidError, match=rf"^--set: '{key}' = .* is out of range; it must be {requirement}$"):
        load_config(None, [assignment])


def test_new_range_edges_are_allowed():
    config = load_config(None, ["train.pad=0", "train.checkpoint_every=0", "train.lr_gamma=1", "train.bn_chunk=48"])
    assert (config.train.pad, config.train.checkpoint_every, config.train.lr_gamma) == (0, 0, 1.0)
    assert config.cluster.relaxed is None and load_config(None, ["cluster.relaxed=-3"]).cluster.relaxed == -3.0


def test_batch_size_must_be_a_multiple_of_instances(tmp_path):
    message = r"^--set: 'train.batch_size' = 30 is not a multiple of 'train.instances' = 4; .*multiple of instances$"
    with pytest.raises(AuxReidError, match=message):
        load_config(None, ["train.batch_size=30"])
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  batch_size: 30\n")
    with pytest.raises(AuxReidError, match=r"c.yaml: 'train.batch_size' = 30 is not a multiple"):
        load_config(path)
    # A later layer can fix what an earlier one left inconsistent: only the final config is checked.
    assert load_config(path, ["train.instances=5"]).train.instances == 5


def test_range_objects_check_a_value_and_word_the_same_requirement():
    from stages.config import Choices, DataConfig, Pattern, Range

    cases = [
        (Range(low=0), -1, 0, ">= 0"),
        (Range(low=0, low_open=True), 0, 0.5, "> 0"),
        (Range(low=0, high=1, low_open=True, high_open=True, note=": why"), 1, 0.5, "in (0, 1): why"),
        (Range(low=0, high=1, high_open=True), 1, 0, "in [0, 1)"),
        (Range(low=0, high=2**32 - 1, high_text="2**32 - 1"), 2**32, 2**32 - 1, "in [0, 2**32 - 1]"),
        (Choices((1, 2)), 3, 2, "1 or 2"),
        (Pattern(r"auto|cpu", "auto or cpu"), "gpu", "cpu", "auto or cpu"),
    ]
    for check, refused, allowed, wording in cases:
        assert not check(refused) and check(allowed) and check.requirement == wording, check
    assert Range(null=True)(None) and not Range()(None) and Range(null=True).requirement == "null or a finite number"
    fields = [f for section in (DataConfig, TrainConfig) for f in dataclasses.fields(section) if "check" in f.metadata]
    assert fields and all(hasattr(f.metadata["check"], "requirement") for f in fields)


@pytest.mark.parametrize("name", ["duke", "mars"])
def test_plus_configs_are_the_paper_configs_with_the_measured_improvements(name):
    """configs/<name>-plus.yaml differs from the paper's config only where auxreid measured a gain."""
    from stages.config import config_to_dict

    paper, plus = (config_to_dict(load_config(CONFIGS / f"{n}.yaml")) for n in (name, f"{name}-plus"))
    differ = {(section, key) for section in paper if isinstance(paper[section], dict)
              for key in paper[section] if paper[section][key] != plus[section][key]}
    assert differ == {("cluster", "camera_norm")} and plus["cluster"]["camera_norm"] is True
    assert load_config(CONFIGS / "synth.yaml").cluster.camera_norm is True
