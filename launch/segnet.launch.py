"""Launch segnet_node beside a camera, optionally with RViz.

  ros2 launch segnet_ros segnet.launch.py image:=/camera/image_raw
  ros2 launch segnet_ros segnet.launch.py \
      params_file:=$(ros2 pkg prefix segnet_ros)/share/segnet_ros/config/cityscapes.yaml
  ros2 launch segnet_ros segnet.launch.py model:=fcn-resnet18-deepscene backend:=tensorrt namespace:=front rviz:=true

Parameters come from config/segnet.yaml, then params_file, then the model/backend
arguments when they are given (empty means: leave the files' values alone).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

# launch argument -> node topic it is remapped onto
TOPIC_ARGUMENTS = {"image": "image", "compressed_image": "image/compressed", "camera_info": "camera_info"}
# launch arguments that override node parameters of the same name when non-empty
PARAMETER_ARGUMENTS = ("model", "backend")

ARGUMENTS = (
    ("image", "/camera/image_raw", "camera image topic (sensor_msgs/Image) to segment"),
    ("compressed_image", "/camera/image_raw/compressed", "camera topic used with input_transport:=compressed"),
    ("camera_info", "/camera/camera_info", "camera info topic (used with use_camera_info:=true)"),
    ("namespace", "", "namespace for the node and its topics"),
    ("params_file", "", "extra parameter file, e.g. config/cityscapes.yaml"),
    ("model", "", "model name or .onnx path; empty: from the parameter files"),
    ("backend", "", "auto | onnxruntime | tensorrt; empty: from the parameter files"),
    ("rviz", "false", "start RViz with config/rviz/segnet.rviz"),
)


def _nodes(context):
    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    share = FindPackageShare("segnet_ros").perform(context)
    parameters = [f"{share}/config/segnet.yaml"]
    if value("params_file"):
        parameters.append(value("params_file"))
    overrides = {name: value(name) for name in PARAMETER_ARGUMENTS if value(name)}
    if overrides:
        parameters.append(overrides)
    nodes = [Node(
        package="segnet_ros",
        executable="segnet_node",
        name="segnet",
        namespace=value("namespace"),
        parameters=parameters,
        remappings=[(topic, value(argument)) for argument, topic in TOPIC_ARGUMENTS.items()],
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
