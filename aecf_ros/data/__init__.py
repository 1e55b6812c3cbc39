"""aecf_ros.data: the scene generator (camera, lidar and text views of one multi-label truth)
and the loader for pre-extracted ``.npz`` feature files.

``classes.CLASS_NAMES`` fixes the label order; ``scenes.generate_scene(index, seed, config)``
and ``scenes.build_arrays(n, seed)`` make data; ``features.load_features(path)`` reads files.
"""
