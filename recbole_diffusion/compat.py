"""RecBole 1.2.1 on the current stack: what NumPy 2 and SciPy >= 1.13 removed from under it.

Installed once, at ``import recbole_diffusion`` (:func:`install`); each shim names the RecBole
line it answers and is tested by ``tests/test_compat.py``, which fails without it.

- NumPy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``. RecBole's
  ``Config.compatibility_settings`` (``recbole/config/configurator.py:625-635``), run by every
  Config, assigns them to the old aliases (``np.float = np.float_`` ...) that its metrics
  (``recbole/evaluator/metrics.py:90``) and data code (``recbole/data/interaction.py:31``) use,
  and fails with an AttributeError. The shim sets the same aliases from NumPy 2's names.
- SciPy 1.13 removed ``dok_matrix._update``, with which RecBole's graph models fill their
  adjacency matrix (``recbole/model/general_recommender/lightgcn.py:111``; NGCF, NCL, GCMC,
  SpectralCF, KGIN, MCCLK alike). The shim gives it back: a plain update of the matrix's entries,
  what it was.

RecBole's own Ray code (``recbole/trainer/hyper_tuning.py``, ``run_hyper.py``) is not reached by
the plugin, whose searches use the current ``ray.tune`` API directly (:mod:`.quick_start.tune`).
"""

import numpy as np
import scipy.sparse as sp

import recbole.config.configurator

# RecBole's aliases and what they mean in NumPy 2 (configurator.py:628-635).
NUMPY_ALIASES = {
    "bool": np.bool_, "int": np.int_, "float": np.float64, "complex": np.complex128,
    "object": np.object_, "str": np.str_, "long": np.int_, "unicode": np.str_,
}


def numpy_aliases(config=None):  # a method of RecBole's Config: config is the Config
    """RecBole's ``compatibility_settings``, with names that exist in NumPy 1.26 and 2 alike."""
    for alias, value in NUMPY_ALIASES.items():
        setattr(np, alias, value)


def _dok_update(self, entries):
    """SciPy < 1.13's ``dok_matrix._update``: store ``{(row, col): value}`` entries as given."""
    self._dict.update(entries)


def install():
    recbole.config.configurator.Config.compatibility_settings = numpy_aliases
    if not hasattr(sp.dok_matrix, "_update"):
        sp.dok_matrix._update = _dok_update
