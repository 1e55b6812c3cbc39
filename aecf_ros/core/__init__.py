"""aecf_ros.core"""
