"""aecf_ros.data: the scene generator (camera, lidar and text views of one multi-label truth)
and the loader for pre-extracted ``.npz`` feature files. Imports no encoder, no torch, no ROS.

``classes.CLASS_NAMES`` fixes the label order; ``scenes.generate_scene(index, seed, config)``
assembles a scene from ``catalogue`` (objects and clutter), ``camera``, ``lidar`` and ``text``
(one renderer each) over the types of ``scene_types`` and ``items``; ``coverage`` measures how
often each view shows a class; ``features.load_features(path)`` reads files. Training arrays
(``build_arrays``) are ``aecf_ros.train.arrays``.
"""
