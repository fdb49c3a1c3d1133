#!/usr/bin/env bash
# Builds msgs/vision_msgs (the LabelInfo/VisionClass subset of vision_msgs, not on PyPI) into a
# virtual environment's own prefix with the ROS interface tool chain pip installed there
# (ament_cmake, rosidl generators and typesupports; cmake and ninja from PyPI too). The wheels
# treat the venv as a ROS prefix, so afterwards `from vision_msgs.msg import LabelInfo` works in
# that venv with no environment variables.
#
#   msgs/build.sh VENV
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 VENV" >&2; exit 2; }
venv=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
build="$venv/var/vision_msgs-build"
manifest="$venv/var/vision_msgs-install-manifest.txt"
export PATH="$venv/bin:$PATH"  # PyPI's cmake and ninja first
# Only the venv is a ROS prefix here, even in a shell where a ROS install is sourced.
export AMENT_PREFIX_PATH="$venv"
unset CMAKE_PREFIX_PATH PYTHONPATH COLCON_PREFIX_PATH

# Remove what an earlier build installed, so a message dropped from msgs/ does not linger.
if [ -f "$manifest" ]; then
  tr '\n' '\0' < "$manifest" | xargs -0 rm -f --
  rm -f "$manifest"
fi
rm -rf "$build"

mkdir -p "$venv/var"
start=$SECONDS
cmake -S "$here/vision_msgs" -B "$build" -G Ninja --log-level=WARNING \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_TESTING=OFF \
  -DCMAKE_PREFIX_PATH="$venv" \
  -DCMAKE_INSTALL_PREFIX="$venv" \
  -DPython3_EXECUTABLE="$venv/bin/python3" \
  -DCMAKE_PROJECT_INCLUDE="$here/cmake/fix_wheel_includes.cmake" \
  > "$build.log" 2>&1 || { cat "$build.log"; echo "vision_msgs: configure failed" >&2; exit 1; }
configured=$SECONDS
cmake --build "$build" >> "$build.log" 2>&1 || { tail -n 60 "$build.log"; echo "vision_msgs: build failed" >&2; exit 1; }
built=$SECONDS
cmake --install "$build" >> "$build.log" 2>&1 || { tail -n 30 "$build.log"; echo "vision_msgs: install failed" >&2; exit 1; }
cp "$build/install_manifest.txt" "$manifest"
rm -rf "$build"
echo "vision_msgs built into $venv (configure $((configured - start)) s, build $((built - configured)) s," \
     "install $((SECONDS - built)) s; log: $build.log)"
