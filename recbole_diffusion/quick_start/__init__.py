from recbole_diffusion.quick_start.quick_start import (
    build,
    load_data_and_model,
    objective_function,
    run,
    run_recbole_diffusion,
)

__all__ = ["build", "load_data_and_model", "objective_function", "run", "run_recbole_diffusion"]
