"""Config validation that fails before any training starts, naming the key and its value."""


class ConfigError(ValueError):
    """A configuration value the plugin cannot run with."""


def is_int(value):
    """An integer, and not a bool (which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def require(condition, key, value, rule):
    """Raise :class:`ConfigError` ``"<key> = <value>: <rule>"`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"config key '{key}' = {value!r}: {rule}")


def require_choice(config, key, choices):
    """``config[key]`` must be one of ``choices``."""
    require(config[key] in choices, key, config[key], f"must be one of {list(choices)}")


def require_inference_steps(config):
    """``inference_steps`` (denoiser calls at inference) must be None (= steps) or an integer in [1, steps]."""
    value, steps = config["inference_steps"], config["steps"]
    require(
        value is None or (is_int(value) and 1 <= value <= steps),
        "inference_steps",
        value,
        f"must be None (all steps) or an integer in [1, steps = {steps}]",
    )


def require_sampling_steps(config):
    """``sampling_steps`` (T', the noising of the history before the reverse process) must be an integer in [0, steps]."""
    value, steps = config["sampling_steps"], config["steps"]
    require(
        isinstance(value, int) and 0 <= value <= steps,
        "sampling_steps",
        value,
        f"must be an integer in [0, steps = {steps}]",
    )
