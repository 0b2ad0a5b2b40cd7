"""simattr_fast: which training images is a prediction resting on?

Exact top-k similarity and batched exemplar SVMs over image embeddings, on CPU and CUDA.
"""

from importlib.metadata import version as _version

from ._kernels.backend import cuda_available
from ._kernels.esvm import ConvergenceWarning, esvm_topk
from ._kernels.topk import topk
from .attribution import Attribution
from .attributor import Attributor

__version__ = _version("simattr_fast")  # defined once, in pyproject.toml
__all__ = ["topk", "esvm_topk", "cuda_available", "Attributor", "Attribution", "ConvergenceWarning", "__version__"]
