from recbole_diffusion.config.configurator import Config

__all__ = ["Config"]
