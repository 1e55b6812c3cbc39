import sys, time, numpy as np, rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image
rclpy.init()
n = Node("cam_pub")
pub = n.create_publisher(Image, "/camera/image_raw", 5)
img = Image(height=480, width=640, encoding="rgb8", step=1920)
img.data = np.random.default_rng(0).integers(0, 255, 921600).astype(np.uint8).tobytes()
t_end = time.monotonic() + float(sys.argv[1])
k = 0
while time.monotonic() < t_end:
    img.header.stamp = n.get_clock().now().to_msg()
    pub.publish(img); k += 1
    time.sleep(max(0.0, (k / 30.0) - (time.monotonic() - (t_end - float(sys.argv[1])))))
print("sent", k)
