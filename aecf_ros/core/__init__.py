"""aecf_ros.core: AECF torch maths (no ROS import; enforced by test/test_core_no_ros.py).

Public API is re-exported here; see docs/ARCHITECTURE.md for the fusion interface contract.
"""
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
from .fusion import INPUT_ABS_LIMIT, AECFusion, CurriculumConfig, FusionOutput
from .losses import AECFObjective
from .metrics import average_precision, confidence_rise_rate, macro_map

__all__ = [
    "AECFusion",
    "CurriculumConfig",
    "INPUT_ABS_LIMIT",
    "FusionOutput",
    "ConcatFusion",
    "MeanFusion",
    "AttentionFusion",
    "FUSION_METHODS",
    "AECF_ABLATIONS",
    "build_fusion",
    "objective_flags",
    "AECFObjective",
    "expected_calibration_error",
    "reliability_curve",
    "fit_temperature",
    "TemperatureScaler",
    "PresenceTemperatureScaler",
    "fit_platt",
    "platt_scale",
    "PresencePlattScaler",
    "average_precision",
    "macro_map",
    "confidence_rise_rate",
]
