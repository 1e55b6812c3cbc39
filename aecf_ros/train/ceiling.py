"""Legacy import path of :mod:`aecf_ros.train.per_pattern_experts` (the "per-pattern ceiling"
was renamed: it is a reference that single models can beat, not a bound)."""
from aecf_ros.train.per_pattern_experts import (LEGACY_NAMES, PER_PATTERN_EXPERTS, PatternRouter,  # noqa: F401
                                                train_per_pattern_experts, with_pattern)

CEILING = PER_PATTERN_EXPERTS
train_ceiling = train_per_pattern_experts
