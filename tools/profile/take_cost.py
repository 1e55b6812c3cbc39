"""CPU per camera frame spent taking + converting a 640x480 rgb8 Image (no encoding) in a subscriber
process (all its threads: the middleware's receive path included). Run beside pub_camera.py."""
import sys, time, rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image
from aecf_ros.runtime.conversions import image_msg_to_rgb
mode, n_target = sys.argv[1], 300
rclpy.init()
node = Node("take_cost")
got = []
def on_msg(m):
    rgb = image_msg_to_rgb(m)
    got.append(rgb.shape)
node.create_subscription(Image, "/camera/image_raw", on_msg, 5)
ex = SingleThreadedExecutor(); ex.add_node(node)
while len(got) < 10:
    ex.spin_once(timeout_sec=0.1)
c0, w0, n0 = time.process_time(), time.monotonic(), len(got)
while len(got) < n0 + n_target:
    ex.spin_once(timeout_sec=0.1)
c1, w1 = time.process_time(), time.monotonic()
print(f"{mode}: {(c1 - c0) / n_target * 1e3:.2f} ms CPU per frame over {n_target} frames ({(c1-c0)/(w1-w0)*100:.1f}% of a core)")
