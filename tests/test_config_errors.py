"""Bad configurations stop early, with an error naming the key and its value."""

import pytest

import recbole.trainer

from recbole_diffusion.config import Config
from recbole_diffusion.quick_start import build, run_recbole_diffusion
from recbole_diffusion.utils import ConfigError


@pytest.mark.parametrize("model", ["DiffRec", "TDiffRec"])
@pytest.mark.parametrize(
    "overrides, key, value",
    [
        ({"noise_min": 0.02, "noise_max": 0.01}, "noise_min", "0.02"),
        ({"steps": 0}, "steps", "0"),
        ({"steps": 5, "sampling_steps": 6}, "sampling_steps", "6"),
        ({"noise_schedule": "quadratic"}, "noise_schedule", "'quadratic'"),
        ({"mean_type": "v_pred"}, "mean_type", "'v_pred'"),
    ],
)
def test_bad_value_stops_at_config(model, overrides, key, value, tiny_config, no_data_loading):
    with pytest.raises(ConfigError) as info:
        Config(model=model, dataset="ml-100k", config_dict=tiny_config(**overrides))
    message = str(info.value)
    assert f"'{key}'" in message
    assert f"= {value}" in message


def test_noise_min_error_also_names_noise_max(tiny_config, no_data_loading):
    with pytest.raises(ConfigError, match="noise_max = 0.01"):
        Config(model="DiffRec", dataset="ml-100k", config_dict=tiny_config(noise_min=0.02, noise_max=0.01))


def test_tdiffrec_weight_bounds(tiny_config, no_data_loading):
    with pytest.raises(ConfigError, match=r"'w_min' = 2\.0"):
        Config(model="TDiffRec", dataset="ml-100k", config_dict=tiny_config(w_min=2.0, w_max=1.0))


def test_a_missing_embedding_file_stops_at_config(tiny_config, no_data_loading):
    with pytest.raises(ConfigError, match=r"'item_emb_path' = 'no/such/emb\.npy': no such file"):
        Config(model="LDiffRec", dataset="ml-100k", config_dict={**tiny_config(), "item_emb_path": "no/such/emb.npy"})


def test_good_config_passes(tiny_config, no_data_loading):
    config = Config(model="TDiffRec", dataset="ml-100k", config_dict=tiny_config(sampling_steps=5))
    assert config["steps"] == 5 and config["sampling_steps"] == 5


def test_tdiffrec_without_time_field_fails_before_training(tiny_config, checkpoint_dir, monkeypatch):
    fit_calls = []
    monkeypatch.setattr(recbole.trainer.Trainer, "fit", lambda *a, **k: fit_calls.append(a))
    config_dict = tiny_config(load_col={"inter": ["user_id", "item_id", "rating"]})

    config = Config(model="TDiffRec", dataset="ml-100k", config_dict=config_dict)
    with pytest.raises(ConfigError, match="TIME_FIELD"):
        build(config)
    with pytest.raises(ConfigError, match="TIME_FIELD") as info:
        run_recbole_diffusion(model="TDiffRec", dataset="ml-100k", config_dict=config_dict)
    assert "load_col" in str(info.value)  # says how to fix it
    assert fit_calls == []
    assert not checkpoint_dir.exists() or not any(checkpoint_dir.iterdir())


def test_tdiffrec_error_is_from_the_missing_column_not_the_config(tiny_config, no_data_loading):
    """Without the timestamp column the config itself is fine; the model finds out when built."""
    Config(
        model="TDiffRec", dataset="ml-100k", config_dict=tiny_config(load_col={"inter": ["user_id", "item_id", "rating"]})
    )


@pytest.mark.parametrize("name", ["NoSuchModel", "recbole.NoSuchModel"])
def test_unknown_model_is_named(name, tiny_config, no_data_loading):
    with pytest.raises(ValueError, match="NoSuchModel"):
        Config(model=name, dataset="ml-100k", config_dict=tiny_config())
