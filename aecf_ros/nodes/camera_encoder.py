"""``camera_encoder``: sensor_msgs/Image and sensor_msgs/CompressedImage -> camera embedding.

Input (remapped by graph.py), one of two by the ``transport`` parameter (read on configure):
``raw`` (default) = ``image`` (sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8, mono8, mono16/16UC1,
yuv422/uyvy, yuyv/yuv422_yuy2, bayer_rggb8/bggr8/gbrg8/grbg8, any row padding); ``compressed`` =
``image_compressed`` (jpeg/png, image_transport's ``<topic>/compressed``). Never both: a driver
publishing both would have every frame encoded twice.
Output: ``aecf/embedding/camera`` (aecf_ros/ModalityEmbedding, source header copied).
Conversions and input checks: ``aecf_ros.runtime.inputs.MODALITY_INPUTS["camera"]``.
Parameters: see :data:`aecf_ros.graph.NODES` (model_path, device, qos.image.*, ...).
"""
from __future__ import annotations

import numpy as np

from aecf_ros.nodes.encoder_base import EncoderNode, encoder_main


class CameraEncoderNode(EncoderNode):
    MODALITY = "camera"
    SPEC_NAME = "camera_encoder"

    def warm_up_input(self):
        return np.zeros((96, 128, 3), dtype=np.uint8)


NODE_CLASS = CameraEncoderNode


def main(args=None) -> int:
    return encoder_main(CameraEncoderNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
