"""aecf_ros.runtime"""
