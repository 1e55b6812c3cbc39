"""aecf_ros.train"""
