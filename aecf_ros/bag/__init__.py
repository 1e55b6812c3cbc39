"""aecf_ros.bag"""
