"""``lidar_encoder``: sensor_msgs/PointCloud2 -> lidar embedding.

Input (remapped by graph.py): ``points`` — any field layout with float32 x, y, z (intensity
optional, ring/time/padding ignored, NaN points dropped; big-endian or missing x/y/z are
counted drops). Output: ``aecf/embedding/lidar`` (source header copied). A cloud with no
valid point is dropped (``no_points``): an empty return is no evidence about the scene.
Conversion and checks: ``aecf_ros.runtime.inputs.MODALITY_INPUTS["lidar"]``.
"""
from __future__ import annotations

import numpy as np

from aecf_ros.nodes.encoder_base import EncoderNode, encoder_main


class LidarEncoderNode(EncoderNode):
    MODALITY = "lidar"
    SPEC_NAME = "lidar_encoder"

    def warm_up_input(self):
        return np.random.default_rng(0).normal(size=(2048, 4)).astype(np.float32)


NODE_CLASS = LidarEncoderNode


def main(args=None) -> int:
    return encoder_main(LidarEncoderNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main())
