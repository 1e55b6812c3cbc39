"""The debug view draws what the prediction says: a badge per sensor in its state's colour, the gate
weights and scores as bar lengths, the camera frame dimmed while it is not fused."""
from __future__ import annotations

import numpy as np
import pytest

from aecf_ros.runtime.debug_view import (FUSED, NEVER_SEEN, NO_FRAME_BACKGROUND, STALE, STATE_COLOURS,
                                         BAR_COLOUR, ViewInput, filled_width, render, sensor_state)

MODALITIES = ["camera", "lidar", "text"]


def view(present, ages, weights, scores=(0.9, 0.1, 0.6, 0.3)):
    return ViewInput(class_names=["person", "car", "bike", "dog"][:len(scores)], scores=list(scores),
                     modalities=MODALITIES, present=list(present), weights=list(weights), ages_s=list(ages),
                     gate_entropy=0.5)


def filled_pixels(image, rect, colour) -> int:
    """Pixels of ``colour`` along the middle row of a bar."""
    row = image[(rect.y0 + rect.y1) // 2, rect.x0:rect.x1]
    return int(np.all(row == np.array(colour, np.uint8), axis=1).sum())


def test_sensor_state_from_presence_and_age():
    assert sensor_state(True, 0.01) == FUSED
    assert sensor_state(False, 2.5) == STALE
    assert sensor_state(False, -1.0) == NEVER_SEEN


@pytest.mark.parametrize("present,ages,weights", [
    ([True, True, False], [0.02, 0.05, -1.0], [0.7, 0.3, 0.0]),
    ([False, True, True], [3.0, 0.05, 0.5], [0.0, 0.25, 0.75]),
    ([False, False, True], [-1.0, 9.0, 0.1], [0.0, 0.0, 1.0]),
])
def test_badges_bars_and_lines_match_the_prediction(present, ages, weights):
    frame = np.full((480, 640, 3), (200, 10, 10), np.uint8)
    v = view(present, ages, weights)
    out = render(v, frame, width=640, top_k=3)
    img, layout = out.image, out.layout
    assert img.shape == (layout.height, 640, 3) and img.dtype == np.uint8
    for m, p, a, w in zip(MODALITIES, present, ages, weights):
        state = sensor_state(p, a)
        assert out.states[m] == state
        b = layout.badges[m]
        assert np.all(img[b.y0:b.y1, b.x0:b.x1] == np.array(STATE_COLOURS[state], np.uint8)), m
        bar = layout.weight_bars[m]
        assert filled_pixels(img, bar, BAR_COLOUR) == filled_width(bar, w)
        assert any(line.startswith(f"{m} {state}") and line.endswith(f"w={w:.2f}") for line in out.lines)
    # top-3 classes, best first, bar lengths = scores
    assert [line for line in out.lines if line.split()[0] in ("person", "car", "bike", "dog")] == \
        ["person 0.90", "bike 0.60", "dog 0.30"]
    for rect, score in zip(layout.score_bars, (0.9, 0.6, 0.3)):
        assert filled_pixels(img, rect, BAR_COLOUR) == filled_width(rect, score)
    # the frame: its own colour while the camera is fused, dimmed (and noted) otherwise
    centre = img[layout.frame_height // 4, 320].astype(int)
    if present[0]:
        assert centre.tolist() == [200, 10, 10]
    else:
        assert centre[0] < 100 and any("not fused" in line for line in out.lines)


def test_without_a_frame_the_panel_is_still_drawn():
    out = render(view([False, True, True], [-1.0, 0.1, 0.2], [0.0, 0.5, 0.5]), None, width=320, top_k=2)
    assert out.image.shape[1] == 320
    assert out.image[5, 300].tolist() == list(NO_FRAME_BACKGROUND)
    assert out.states == {"camera": NEVER_SEEN, "lidar": FUSED, "text": FUSED}
    assert "no camera frame" in out.lines


def test_frame_aspect_is_kept_and_bad_values_clip():
    frame = np.zeros((100, 400, 3), np.uint8)
    out = render(view([True, True, True], [0, 0, 0], [np.nan, 2.0, -1.0], scores=(1.5, -0.2)), frame,
                 width=800, top_k=5)
    assert out.layout.frame_height == 200 and len(out.layout.score_bars) == 2
    bars = out.layout.weight_bars
    assert filled_pixels(out.image, bars["camera"], BAR_COLOUR) == 0  # NaN draws nothing
    assert filled_pixels(out.image, bars["lidar"], BAR_COLOUR) == bars["lidar"].width  # clipped to 1
    assert filled_pixels(out.image, bars["text"], BAR_COLOUR) == 0


def test_shipped_layouts_show_the_graph_topics():
    """config/foxglove_layout.json and config/aecf.rviz point at what the graph publishes."""
    import json
    import re
    from pathlib import Path

    import yaml

    from aecf_ros import graph

    config = Path(__file__).resolve().parents[1] / "config"
    layout = json.loads((config / "foxglove_layout.json").read_text())
    panels = layout["configById"]

    def leaves(node):
        return [node] if isinstance(node, str) else leaves(node["first"]) + leaves(node["second"])

    assert sorted(leaves(layout["layout"])) == sorted(panels)  # every panel shown and configured
    assert panels["Image!aecfdebug"]["imageMode"]["imageTopic"] == "/" + graph.DEBUG_IMAGE_TOPIC
    assert panels["RawMessages!aecfprediction"]["topicPath"] == "/" + graph.PREDICTION_TOPIC
    assert panels["DiagnosticSummary!aecfdiag"]["topicToRender"] == graph.DIAGNOSTICS_TOPIC
    plot = panels["Plot!aecfweights"]["paths"]
    assert [p["label"] for p in plot] == list(graph.MODALITIES)  # FusedPrediction.modalities order
    assert all(re.fullmatch(rf"/{graph.PREDICTION_TOPIC}\.modality_weights\[{i}\]", p["value"])
               for i, p in enumerate(plot))
    rviz = yaml.safe_load((config / "aecf.rviz").read_text())
    (image,) = [d for d in rviz["Visualization Manager"]["Displays"] if d["Class"].endswith("/Image")]
    assert image["Topic"]["Value"] == "/" + graph.DEBUG_IMAGE_TOPIC


def test_silent_fusion_node_view_marks_every_sensor_and_lists_no_class():
    from aecf_ros.runtime.debug_view import NO_PREDICTION, silent_view

    frame = np.full((90, 120, 3), 50, np.uint8)
    out = render(silent_view(MODALITIES, 3.25), frame, width=480, top_k=3)
    assert out.states == {m: NO_PREDICTION for m in MODALITIES}
    for m in MODALITIES:
        b = out.layout.badges[m]
        assert np.all(out.image[b.y0:b.y1, b.x0:b.x1] == np.array(STATE_COLOURS[NO_PREDICTION], np.uint8))
        assert filled_pixels(out.image, out.layout.weight_bars[m], BAR_COLOUR) == 0
    assert out.layout.score_bars == [] and any(line.startswith("NO PREDICTION for 3.2") for line in out.lines)
