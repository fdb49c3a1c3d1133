"""The ROS-free core: models, pre-processing, class grids and rendering. Never imports rclpy."""

from .errors import BackendError, FrameError, ModelError, SegnetError
from .model import Model, ModelFiles, load_model
from .segnet import Segmentation, SegNet, SegNetSettings

__all__ = [
    "BackendError", "FrameError", "Model", "ModelError", "ModelFiles", "SegNet", "SegNetSettings",
    "SegnetError", "Segmentation", "load_model",
]
