"""Launch segnet_node beside a camera, optionally with RViz.

  ros2 launch segnet_ros segnet.launch.py image:=/camera/image_raw
  ros2 launch segnet_ros segnet.launch.py \
      params_file:=$(ros2 pkg prefix segnet_ros)/share/segnet_ros/config/cityscapes.yaml
  ros2 launch segnet_ros segnet.launch.py model:=fcn-resnet18-deepscene backend:=tensorrt namespace:=front rviz:=true
  ros2 launch segnet_ros segnet.launch.py cameras:="front, left, right"   # one node, one model, three cameras
  ros2 launch segnet_ros segnet.launch.py \
      params_file:=$(ros2 pkg prefix segnet_ros)/share/segnet_ros/config/three_cameras.yaml

Parameters come from config/segnet.yaml, then params_file, then the model/backend/cameras
arguments when they are given (empty means: leave the files' values alone). With cameras, each
camera's inputs are remapped from the camera_* patterns ({camera} is its name) and its outputs
are published as <camera>/class_mask, <camera>/overlay, ...
"""

import re

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from segnet_ros.transport import launch_environment

# launch argument -> node topic it is remapped onto
TOPIC_ARGUMENTS = {"image": "image", "compressed_image": "image/compressed", "camera_info": "camera_info"}
# with cameras: launch argument -> each camera's topic, remapped from the argument's {camera} pattern
CAMERA_TOPIC_ARGUMENTS = {"camera_image": "image", "camera_compressed_image": "image/compressed",
                          "camera_camera_info": "camera_info"}
# launch arguments that override node parameters of the same name when non-empty
PARAMETER_ARGUMENTS = ("model", "backend", "cameras")

ARGUMENTS = (
    ("image", "/camera/image_raw", "camera image topic (sensor_msgs/Image) to segment"),
    ("compressed_image", "/camera/image_raw/compressed", "camera topic used with input_transport:=compressed"),
    ("camera_info", "/camera/camera_info", "camera info topic (used with use_camera_info:=true)"),
    ("namespace", "", "namespace for the node and its topics"),
    ("params_file", "", "extra parameter file, e.g. config/cityscapes.yaml"),
    ("model", "", "model name or .onnx path; empty: from the parameter files"),
    ("backend", "", "auto | onnxruntime | openvino | tensorrt; empty: from the parameter files"),
    ("transport_profile", "default", "Fast DDS profile of the node's process: default (config/fastdds_large_data.xml, "
     "a shared-memory segment large enough for whole images), a file, or '' for Fast DDS as it comes"),
    ("cameras", "", "camera names sharing one model, e.g. \"front, left, right\"; empty: the one camera above"),
    ("camera_image", "/{camera}/image_raw", "with cameras: each camera's image topic"),
    ("camera_compressed_image", "/{camera}/image_raw/compressed", "with cameras: each camera's compressed topic"),
    ("camera_camera_info", "/{camera}/camera_info", "with cameras: each camera's camera info topic"),
    ("rviz", "false", "start RViz with config/rviz/segnet.rviz"),
)


def camera_names(text: str) -> list[str]:
    """ "front, left right" or "[front, left, right]" -> ["front", "left", "right"]."""
    return [name for name in re.split(r"[\s,\[\]'\"]+", text) if name]


def file_cameras(paths: list[str]) -> list[str]:
    """The cameras a parameter file sets (the last file that sets them wins), so that a file like
    config/three_cameras.yaml gets its cameras' topics remapped too."""
    import yaml

    cameras: list[str] = []
    for path in paths:
        with open(path) as stream:
            for section in (yaml.safe_load(stream) or {}).values():
                cameras = list((section or {}).get("ros__parameters", {}).get("cameras") or cameras)
    return cameras



def _nodes(context):
    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    share = FindPackageShare("segnet_ros").perform(context)
    parameters = [f"{share}/config/segnet.yaml"]
    if value("params_file"):
        parameters.append(value("params_file"))
    overrides = {name: value(name) for name in PARAMETER_ARGUMENTS if value(name)}
    cameras = camera_names(overrides.pop("cameras", "")) or file_cameras(parameters)
    if cameras:
        overrides["cameras"] = cameras
        remappings = [(f"{camera}/{topic}", value(argument).format(camera=camera))
                      for camera in cameras for argument, topic in CAMERA_TOPIC_ARGUMENTS.items()]
    else:
        remappings = [(topic, value(argument)) for argument, topic in TOPIC_ARGUMENTS.items()]
    if overrides:
        parameters.append(overrides)
    nodes = [Node(
        package="segnet_ros",
        executable="segnet_node",
        name="segnet",
        namespace=value("namespace"),
        parameters=parameters,
        remappings=remappings,
        additional_env=launch_environment(value("transport_profile"), share),  # doc/transport.md
        output="screen",
        emulate_tty=True,
    )]
    if value("rviz").lower() == "true":
        nodes.append(Node(package="rviz2", executable="rviz2", name="segnet_rviz",
                          arguments=["-d", f"{share}/config/rviz/segnet.rviz"], output="screen"))
    return nodes


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
        + [OpaqueFunction(function=_nodes)])
