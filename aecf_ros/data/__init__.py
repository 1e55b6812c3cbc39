"""aecf_ros.data"""
