"""INT8 quantisation of a model on the user's own frames (``segnet-ros quantize``).

Needs ONNX Runtime's quantisation tools and sympy (the ``quantize`` extra); the result lives in
the INT8 model cache of :mod:`segnet_ros.backends.qdq`, where ``precision int8`` finds it.
"""

from .agreement import Agreement, compare
from .calibration import FrameSet, prepare_frames, sample_evenly
from .quantizer import CandidateBackend, QuantizeResult, QuantizeSettings, quantize_model, reduce_range_options

__all__ = ["Agreement", "CandidateBackend", "FrameSet", "QuantizeResult", "QuantizeSettings", "compare",
           "prepare_frames", "quantize_model", "reduce_range_options", "sample_evenly"]
