"""aecf_ros.core: AECF torch maths (no ROS import; enforced by test/test_core_no_ros.py).

Public API is re-exported here; see docs/ARCHITECTURE.md for the fusion interface contract.
"""
from . import baselines, calibration, fusion, losses, metrics
from .baselines import (
    AECF_ABLATIONS,
    FUSION_METHODS,
    AttentionFusion,
    ConcatFusion,
    MeanFusion,
    build_fusion,
    objective_flags,
)
from .calibration import (
    PresencePlattScaler,
    PresenceTemperatureScaler,
    TemperatureScaler,
    expected_calibration_error,
    fit_platt,
    fit_temperature,
    platt_scale,
    reliability_curve,
)
from .fusion import (DEFAULT_WARMUP_FRACTION, INPUT_ABS_LIMIT, REFERENCE_TRAINING_STEPS, AECFusion, CurriculumConfig,
                     FusionOutput)
from .losses import AECFObjective
from .metrics import average_precision, confidence_rise_rate, macro_map

#: names a module exports that the package does not re-export (use ``aecf_ros.core.<module>.<name>``)
_MODULE_ONLY = frozenset({"CURRICULUM_RULES", "ModalityProjection", "FusionBase", "moddrop_mask",
                          "presence_pattern_index"})
#: the public API: the modules' ``__all__`` lists less ``_MODULE_ONLY`` (each name is imported above)
__all__ = [name for module in (fusion, baselines, losses, calibration, metrics) for name in module.__all__
           if name not in _MODULE_ONLY]
