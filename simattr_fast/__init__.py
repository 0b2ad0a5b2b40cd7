"""simattr_fast: which training images is a prediction resting on?

Exact top-k similarity and batched exemplar SVMs over image embeddings, on CPU and CUDA.
"""
from ._backend import cuda_available
from ._esvm import esvm_topk
from ._topk import topk
from .attribution import Attribution
from .attributor import Attributor

__version__ = "0.1.0"
__all__ = ["topk", "esvm_topk", "cuda_available", "Attributor", "Attribution", "__version__"]
