"""Model factories, built from ``config.json``'s ``model`` entry with :func:`build_model`.

Each factory lives in its own module and registers itself by name on import; importing a new
module here (e.g. ``perfusion``) is all it takes to add one.
"""

from workbench.models import classifier, ensemble, perfusion, segmenter  # noqa: F401  (register)
from workbench.models.ensemble import Ensemble, ensemble_vote
from workbench.models.registry import MODELS, build_model, register_model

__all__ = ["MODELS", "Ensemble", "build_model", "ensemble_vote", "register_model"]
