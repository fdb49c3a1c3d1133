"""segnet_ros: FCN-ResNet18 semantic segmentation for ROS 2, on TensorRT or ONNX Runtime."""

__version__ = "0.1.0"
