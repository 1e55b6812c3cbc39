#!/bin/bash
# py-spy profile of camera_encoder at 30 Hz 640x480 rgb8 (shipped model), docs/PROFILE.md.
#   tools/profile/spy_camera.sh <source tree> <out.txt>     (PY_SPY=path/to/py-spy, SPY_OPTS=--native)
# The tree's own aecf_ros is run (cwd = tree), so a worktree of an older commit gives "before".
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
TREE=$(cd "$1" && pwd); OUT=$2
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-71} PYTHONPATH=$TREE
cd "$TREE"
"$REPO/.venv/bin/python" -m aecf_ros.nodes.camera_encoder --ros-args -p device:=cpu -r image:=/camera/image_raw \
  > /tmp/spy_cam_node.log 2>&1 &
NODE=$!
sleep 12
"$REPO/.venv/bin/python" "$REPO/tools/profile/pub_camera.py" 32 > /tmp/spy_pub.log 2>&1 &
PUB=$!
sleep 8
"${PY_SPY:-py-spy}" record ${SPY_OPTS:---nonblocking} -r 100 -d 15 -f raw -o "$OUT" --pid $NODE > /dev/null 2>&1
echo "camera_encoder %CPU RSS(kB): $(ps -o %cpu=,rss= -p $NODE)"
wait $PUB
kill -INT $NODE; wait $NODE
cat /tmp/spy_pub.log
