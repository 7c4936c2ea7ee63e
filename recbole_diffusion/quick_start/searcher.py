"""The search algorithm behind ``search: {algorithm: tpe}`` (imported only when a search runs)."""

import json

import optuna
from ray.tune.search.optuna import OptunaSearch

DISTINCT_ASKS = 100  # how often a search asks Optuna for a config it has not run, before it repeats one


class DistinctOptunaSearch(OptunaSearch):
    """Ray's Optuna searcher that does not run a config twice.

    In a small discrete space (ItemKNN's 15 combinations) random starts and TPE propose configs
    already run, which would spend the budget on reruns. A repeat is told to Optuna as failed (it
    learns nothing from it) and Optuna is asked again; a space with nothing new left repeats.
    """

    def suggest(self, trial_id):
        suggested = self.__dict__.setdefault("distinct_suggested", set())  # in __dict__: Ray's save/restore keeps it
        for attempt in range(DISTINCT_ASKS):
            config = super().suggest(trial_id)
            key = json.dumps(config, sort_keys=True, default=str)
            if key not in suggested or attempt == DISTINCT_ASKS - 1:
                suggested.add(key)
                return config
            self._ot_study.tell(self._ot_trials.pop(trial_id), state=optuna.trial.TrialState.FAIL)
