"""aecf_ros.train: the pipeline behind ``aecf-ros train | evaluate | benchmark | sweep`` (no ROS).

* :mod:`.config`       YAML config (``config/train.yaml``) + ``--set key=value`` overrides
* :mod:`.stage1`       camera CNN + PointNet training on generated scenes; embedding cache
* :mod:`.stage2`       fusion + head training on cached embeddings (same loop for every method),
                       calibration on validation with simulated drops
* :mod:`.scenarios`    sensor-drop scenarios -> presence masks (method-independent, seeded)
* :mod:`.evaluation`   per-scenario mAP / ECE (raw, global T, presence-aware T) / confidence-rise
* :mod:`.pipeline`     the pieces put together, resumable checkpoints
* :mod:`.distributed`  torchrun / DistributedDataParallel (nccl on CUDA, gloo on CPU)
* :mod:`.report`       benchmark aggregation, computed verdict, results.md, plots
* :mod:`.sweep`        equal-budget hyper-parameter selection on validation

The commands themselves (argument parsing, output files) are programs: ``aecf_ros/apps/``
(``train``, ``evaluate``, ``benchmark``, ``sweep``).
"""
