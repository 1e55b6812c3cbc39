"""aecf_ros.encoders"""
