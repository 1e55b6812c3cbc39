"""pip-installable copy of the pure-Python part of aecf_ros (core, encoders, data, CLI).

On a robot the package is built with colcon (package.xml: ament_cmake), which also generates
the messages; this setup.py serves machines without ROS that only train/evaluate models:
``pip install . torch==2.13.0`` then ``aecf-ros train``. The version comes from package.xml.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
version = re.search(r"<version>([^<]+)</version>", (here / "package.xml").read_text()).group(1)

setup(
    name="aecf_ros",
    version=version,
    license="Apache-2.0",  # = package.xml <license>, full text in LICENSE
    packages=find_packages(include=("aecf_ros", "aecf_ros.*")),
    package_data={"aecf_ros": ["models/*.pt", "models/*.json"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/aecf_ros"]),
        ("share/aecf_ros", ["package.xml"]),
    ],
    install_requires=["numpy", "opencv-python-headless", "pyyaml", "tqdm", "rosbags"],
    python_requires=">=3.10",
    entry_points={"console_scripts": ["aecf-ros = aecf_ros.cli:main"]},
)
