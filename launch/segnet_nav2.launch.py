"""Launch segnet_node for Nav2's semantic segmentation layer beside an RGB-D camera (depth enabled).

  ros2 launch segnet_ros segnet_nav2.launch.py
  ros2 launch segnet_ros segnet_nav2.launch.py model:=fcn-resnet18-deepscene namespace:=front \
      image:=/front/color/image_raw depth_image:=/front/aligned_depth_to_color/image_raw
  ros2 launch segnet_ros segnet_nav2.launch.py lifecycle:=true use_lifecycle_manager:=true

The defaults are a RealSense-style camera with depth registered to colour. With use_depth and
mask_size:=depth the node publishes class_mask, confidence and points at the depth image's size with one
stamp, which is what the layer pairs; 'segnet-ros nav2-params' prints the layer's parameters.
Parameters come from config/segnet.yaml, then the Nav2 settings below, then params_file, then the
model/backend arguments when they are given (empty means: leave the files' values alone).
lifecycle:=true runs the managed node (it waits for configure/activate); use_lifecycle_manager:=true
also starts a nav2_lifecycle_manager that brings it up (bond_timeout 0.0: rclpy nodes have no bond).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from segnet_ros.transport import launch_environment

# launch argument -> node topic it is remapped onto
TOPIC_ARGUMENTS = {
    "image": "image",
    "camera_info": "camera_info",
    "depth_image": "depth/image",
    "depth_camera_info": "depth/camera_info",
}
# launch arguments that override node parameters of the same name when non-empty
PARAMETER_ARGUMENTS = ("model", "backend")
# what the layer needs: an organised cloud pixel-aligned with class_mask and confidence
NAV2_PARAMETERS = {"use_depth": True, "mask_size": "depth"}
NODE_NAME = "segnet"
EXECUTABLES = {False: "segnet_node", True: "segnet_lifecycle_node"}  # by lifecycle:=
LIFECYCLE_MANAGER_PARAMETERS = {"autostart": True, "bond_timeout": 0.0}  # bond_timeout 0.0: no bond expected

ARGUMENTS = (
    ("image", "/camera/color/image_raw", "colour image topic (sensor_msgs/Image) to segment"),
    ("camera_info", "/camera/color/camera_info", "colour camera info topic"),
    ("depth_image", "/camera/aligned_depth_to_color/image_raw",
     "depth image registered to the colour camera (16UC1 mm or 32FC1 m)"),
    ("depth_camera_info", "/camera/aligned_depth_to_color/camera_info", "camera info of the depth image"),
    ("namespace", "", "namespace for the node and its topics"),
    ("params_file", "", "extra parameter file, e.g. config/cityscapes.yaml"),
    ("model", "", "model name or .onnx path; empty: from the parameter files"),
    ("backend", "", "auto | onnxruntime | openvino | tensorrt; empty: from the parameter files"),
    ("transport_profile", "default", "Fast DDS profile of the node's process: default (config/fastdds_large_data.xml, "
     "a shared-memory segment large enough for whole images), a file, or '' for Fast DDS as it comes"),
    ("lifecycle", "false", "true: run segnet_lifecycle_node (managed) instead of segnet_node"),
    ("use_lifecycle_manager", "false",
     "true: also start nav2_lifecycle_manager to configure and activate it (implies lifecycle:=true)"),
)


def _flag(text: str, name: str) -> bool:
    """'true'/'false' in any case; anything else fails the launch instead of silently meaning false."""
    if text.lower() not in ("true", "false"):
        raise ValueError(f"launch argument {name} must be true or false; got '{text}'")
    return text.lower() == "true"



def _nodes(context):
    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    share = FindPackageShare("segnet_ros").perform(context)
    parameters = [f"{share}/config/segnet.yaml", dict(NAV2_PARAMETERS)]
    if value("params_file"):
        parameters.append(value("params_file"))
    overrides = {name: value(name) for name in PARAMETER_ARGUMENTS if value(name)}
    if overrides:
        parameters.append(overrides)
    manager = _flag(value("use_lifecycle_manager"), "use_lifecycle_manager")
    managed = _flag(value("lifecycle"), "lifecycle") or manager
    nodes = [Node(
        package="segnet_ros",
        executable=EXECUTABLES[managed],
        name=NODE_NAME,
        namespace=value("namespace"),
        parameters=parameters,
        remappings=[(topic, value(argument)) for argument, topic in TOPIC_ARGUMENTS.items()],
        additional_env=launch_environment(value("transport_profile"), share),  # doc/transport.md
        output="screen",
        emulate_tty=True,
    )]
    if manager:
        nodes.append(Node(package="nav2_lifecycle_manager", executable="lifecycle_manager",
                          name=f"lifecycle_manager_{NODE_NAME}", namespace=value("namespace"),
                          parameters=[{"node_names": [NODE_NAME], **LIFECYCLE_MANAGER_PARAMETERS}], output="screen"))
    return nodes


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
        + [OpaqueFunction(function=_nodes)])
