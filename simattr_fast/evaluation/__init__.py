"""Counterfactual evaluation of attributions (docs/architecture.md, section 4): removal and mislabel
support, LDS, a results store that survives kills, a scheduler with exact early decisions on
local or Ray engines, summaries and plots."""

from .engines import ENGINES, EngineError, default_workers, make_engine
from .lds import lds, subset_margins, subset_masks
from .pipeline import evaluate
from .runner import run_searches
from .scheduler import SupportSearch
from .store import ResultsStore, StoreError
from .summary import head_to_head, plot_cdf, summarize
from .support import CENSORED, flip_classes, random_attribution, support
from .trainers import LinearProbe, SmallCNN, margins, trainer_from_spec
from .units import TrainingUnit, run_unit

__all__ = [
    "evaluate",
    "CENSORED",
    "LinearProbe",
    "ResultsStore",
    "StoreError",
    "SmallCNN",
    "default_workers",
    "ENGINES",
    "EngineError",
    "make_engine",
    "SupportSearch",
    "TrainingUnit",
    "run_unit",
    "flip_classes",
    "head_to_head",
    "lds",
    "margins",
    "plot_cdf",
    "random_attribution",
    "run_searches",
    "subset_margins",
    "subset_masks",
    "summarize",
    "support",
    "trainer_from_spec",
]
