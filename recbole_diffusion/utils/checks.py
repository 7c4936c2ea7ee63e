"""Config validation that fails before any training starts, naming the key and its value."""


class ConfigError(ValueError):
    """A configuration value the plugin cannot run with."""


def require(condition, key, value, rule):
    """Raise :class:`ConfigError` ``"<key> = <value>: <rule>"`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"config key '{key}' = {value!r}: {rule}")


def require_choice(config, key, choices):
    """``config[key]`` must be one of ``choices``."""
    require(config[key] in choices, key, config[key], f"must be one of {list(choices)}")


def require_sampling_steps(config, low):
    """``sampling_steps`` must be an integer in [low, steps]."""
    value, steps = config["sampling_steps"], config["steps"]
    require(
        isinstance(value, int) and low <= value <= steps,
        "sampling_steps",
        value,
        f"must be an integer in [{low}, steps = {steps}]",
    )
