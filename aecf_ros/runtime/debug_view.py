"""The debug view: one image that shows what the fusion node did (ROS-free; the ``debug_view``
node publishes it as ``aecf/debug_image``).

The camera frame on top (darkened, with a note, while the prediction did not fuse the camera),
and under it a panel: one row per modality with a state badge (``fused`` / ``stale`` /
``never seen``), its gate weight as a bar and a number, the age of its newest sample; then the
top predictions with their scores. Everything drawn comes from one ``FusedPrediction``
(:class:`ViewInput` holds its fields), so what the image shows is what the message says.

The panel's geometry is a pure function (:func:`panel_layout`) of the output width, the frame
height, the modalities and ``top_k``: tests (and tools) read pixels back at the same places.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import cv2
import numpy as np

FUSED, STALE, NEVER_SEEN = "fused", "stale", "never seen"
#: every sensor's state while the fusion node publishes nothing (too few sensors present, or the
#: node is down): the view cannot know more than that
NO_PREDICTION = "no prediction"
#: badge colours (RGB): green, amber, grey, red
STATE_COLOURS: dict[str, tuple[int, int, int]] = {
    FUSED: (40, 200, 60),
    STALE: (245, 160, 20),
    NEVER_SEEN: (128, 128, 128),
    NO_PREDICTION: (220, 40, 40),
}
BAR_COLOUR = (70, 150, 255)
BAR_BACKGROUND = (45, 45, 45)
PANEL_BACKGROUND = (20, 20, 20)
TEXT_COLOUR = (235, 235, 235)
NO_FRAME_BACKGROUND = (60, 60, 60)
#: a camera frame not fused in this prediction is drawn at this brightness
NOT_FUSED_DIM = 0.35

ROW_H = 22
MARGIN = 8
BADGE = 14  # badge square side
NAME_W = 190  # "camera  never seen" fits at the font scale below
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.45


def sensor_state(present: bool, age_s: float) -> str:
    """``fused`` when the prediction used the modality, ``never seen`` when the fusion node never had
    a sample of it (``modality_age_s`` < 0), else ``stale`` (seen, but not fused now: timed out,
    disabled or invalid)."""
    if present:
        return FUSED
    return NEVER_SEEN if age_s < 0 else STALE


@dataclass(frozen=True)
class ViewInput:
    """The fields of one ``aecf_ros/FusedPrediction`` the view draws."""

    class_names: Sequence[str]
    scores: Sequence[float]
    modalities: Sequence[str]
    present: Sequence[bool]
    weights: Sequence[float]
    ages_s: Sequence[float]
    gate_entropy: float = 0.0
    #: set (seconds) for the view of a silent fusion node (:func:`silent_view`), else None
    silent_s: Optional[float] = None

    @classmethod
    def from_msg(cls, msg) -> "ViewInput":
        return cls(list(msg.class_names), [float(s) for s in msg.scores], list(msg.modalities),
                   [bool(p) for p in msg.modality_present], [float(w) for w in msg.modality_weights],
                   [float(a) for a in msg.modality_age_s], float(msg.gate_entropy))

    def problem(self) -> Optional[str]:
        """Why this prediction cannot be drawn, else None: its arrays disagree in length (the
        fusion node never publishes that; any publisher on the topic can)."""
        if len(self.scores) != len(self.class_names):
            return f"{len(self.scores)} scores for {len(self.class_names)} class names"
        lengths = {len(self.modalities), len(self.present), len(self.weights), len(self.ages_s)}
        if len(lengths) > 1:
            return (f"{len(self.modalities)} modalities with {len(self.present)} presence flags, "
                    f"{len(self.weights)} weights and {len(self.ages_s)} ages")
        return None

    def states(self) -> list[str]:
        if self.silent_s is not None:
            return [NO_PREDICTION] * len(self.modalities)
        return [sensor_state(p, a) for p, a in zip(self.present, self.ages_s)]

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` highest scores, best first (ties: class order)."""
        order = sorted(range(len(self.scores)), key=lambda i: (-self.scores[i], i))[:k]
        return [(self.class_names[i], self.scores[i]) for i in order]


@dataclass(frozen=True)
class Rect:
    x0: int
    y0: int
    x1: int  # exclusive
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0


@dataclass(frozen=True)
class PanelLayout:
    width: int
    frame_height: int
    height: int  # whole image: frame + panel
    badges: dict[str, Rect]
    weight_bars: dict[str, Rect]
    score_bars: list[Rect]
    text_origins: dict[str, tuple[int, int]] = field(default_factory=dict)


def frame_height_for(width: int, frame_shape: Optional[tuple[int, ...]]) -> int:
    """Height of the camera frame scaled to ``width`` (aspect kept); 3/4 of the width without one."""
    if frame_shape is None or frame_shape[0] <= 0 or frame_shape[1] <= 0:
        return int(round(width * 0.75))
    return max(1, int(round(width * frame_shape[0] / frame_shape[1])))


def panel_layout(width: int, frame_height: int, modalities: Sequence[str], top_k: int) -> PanelLayout:
    """Where everything goes: rows under the frame, one header row, one per modality, one per class."""
    bar_x0 = MARGIN + BADGE + 6 + NAME_W
    bar_x1 = max(bar_x0 + 20, width - MARGIN - 110)
    y = frame_height + MARGIN + ROW_H  # after the header row
    badges, bars, texts = {}, {}, {"header": (MARGIN, frame_height + MARGIN + 15)}
    for m in modalities:
        top = y + (ROW_H - BADGE) // 2
        badges[m] = Rect(MARGIN, top, MARGIN + BADGE, top + BADGE)
        bars[m] = Rect(bar_x0, top, bar_x1, top + BADGE)
        texts[f"name.{m}"] = (MARGIN + BADGE + 6, y + 15)
        texts[f"weight.{m}"] = (bar_x1 + 6, y + 15)
        y += ROW_H
    score_bars = []
    for i in range(top_k):
        top = y + (ROW_H - BADGE) // 2
        score_bars.append(Rect(bar_x0, top, bar_x1, top + BADGE))
        texts[f"class.{i}"] = (MARGIN, y + 15)
        texts[f"score.{i}"] = (bar_x1 + 6, y + 15)
        y += ROW_H
    return PanelLayout(width, frame_height, y + MARGIN, badges, bars, score_bars, texts)


def filled_width(rect: Rect, fraction: float) -> int:
    """Pixels of a bar filled for ``fraction`` in [0, 1] (clipped; non-finite counts as 0)."""
    f = float(fraction) if np.isfinite(fraction) else 0.0
    return int(round(min(1.0, max(0.0, f)) * rect.width))


@dataclass(frozen=True)
class DebugFrame:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    layout: PanelLayout
    states: dict[str, str]
    lines: list[str]  # the text drawn, top to bottom


def _bar(img: np.ndarray, rect: Rect, fraction: float) -> None:
    img[rect.y0:rect.y1, rect.x0:rect.x1] = BAR_BACKGROUND
    n = filled_width(rect, fraction)
    if n:
        img[rect.y0:rect.y1, rect.x0:rect.x0 + n] = BAR_COLOUR


def _text(img: np.ndarray, text: str, origin: tuple[int, int]) -> None:
    cv2.putText(img, text, origin, FONT, FONT_SCALE, TEXT_COLOUR, 1, cv2.LINE_AA)


def _frame(frame: Optional[np.ndarray], width: int, height: int, camera_state: Optional[str]) -> tuple[np.ndarray, str]:
    """The top part: the scaled frame (dimmed unless fused) and the note drawn on it."""
    if frame is None:
        top = np.empty((height, width, 3), np.uint8)
        top[:] = NO_FRAME_BACKGROUND
        note = "no camera frame"
    else:
        interp = cv2.INTER_AREA if frame.shape[1] > width else cv2.INTER_LINEAR
        top = cv2.resize(np.ascontiguousarray(frame), (width, height), interpolation=interp)
        note = ""
        if camera_state not in (None, FUSED):
            top = (top.astype(np.float32) * NOT_FUSED_DIM).astype(np.uint8)
            note = f"camera {camera_state}: not fused"
    if note:
        _text(top, note, (MARGIN, height // 2))
    return top, note


def silent_view(modalities: Sequence[str], silent_s: float) -> ViewInput:
    """What :func:`render` draws while no prediction has arrived for ``silent_s`` seconds: every
    sensor ``no prediction``, no weights, no classes."""
    n = len(modalities)
    return ViewInput([], [], list(modalities), [False] * n, [0.0] * n, [-1.0] * n, 0.0,
                     silent_s=float(silent_s))


def render(view: ViewInput, frame: Optional[np.ndarray], width: int = 640, top_k: int = 3) -> DebugFrame:
    """The debug image for one prediction; ``frame`` is the newest camera frame (RGB) or None."""
    states = view.states()
    state_of = dict(zip(view.modalities, states))
    frame_h = frame_height_for(width, None if frame is None else frame.shape)
    k = min(top_k, len(view.scores))
    layout = panel_layout(width, frame_h, view.modalities, k)
    img = np.empty((layout.height, width, 3), np.uint8)
    img[:] = PANEL_BACKGROUND
    top, note = _frame(frame, width, frame_h, state_of.get("camera"))
    img[:frame_h] = top
    used = [m for m, s in state_of.items() if s == FUSED]
    lines = [note] if note else []
    if view.silent_s is not None:
        header = f"NO PREDICTION for {view.silent_s:.1f} s (too few sensors, or fusion_node down)"
    else:
        header = f"fused: {', '.join(used) or 'none'}   gate entropy {view.gate_entropy:.2f}"
    lines.append(header)
    _text(img, header, layout.text_origins["header"])
    for m, state, weight, age in zip(view.modalities, states, view.weights, view.ages_s):
        img[layout.badges[m].y0:layout.badges[m].y1, layout.badges[m].x0:layout.badges[m].x1] = STATE_COLOURS[state]
        _bar(img, layout.weight_bars[m], weight)
        age_text = "" if age < 0 else f" {age:.1f}s"
        name = f"{m} {state}{age_text}"
        value = "" if view.silent_s is not None else f"w={weight:.2f}"
        lines.append(f"{name} {value}".rstrip())
        _text(img, name, layout.text_origins[f"name.{m}"])
        _text(img, value, layout.text_origins[f"weight.{m}"])
    for i, (cls, score) in enumerate(view.top(k)):
        _bar(img, layout.score_bars[i], score)
        lines.append(f"{cls} {score:.2f}")
        _text(img, cls, layout.text_origins[f"class.{i}"])
        _text(img, f"{score:.2f}", layout.text_origins[f"score.{i}"])
    return DebugFrame(img, layout, state_of, lines)
