"""aecf_ros.nodes"""
