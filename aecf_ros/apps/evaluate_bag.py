"""`aecf-ros evaluate-bag BAG`: the node graph's computation over a bag, offline and deterministic.

One process, no DDS. The bag is read in time order and passed through the drop plan exactly as
``aecf-ros replay`` publishes it (``bag/schedule.py``); each sensor message is converted,
checked and stamped by the table the encoder nodes use (``aecf_ros.runtime.inputs``: header
stamp; text: arrival time), encoded by the model's encoders, and offered to the same
:class:`~aecf_ros.runtime.fusion_engine.FusionEngine` the fusion node runs, with the same
timeouts. Time is the bag's clock (what
``/clock`` carries in a live replay); the fusion ticks every ``1 / publish_rate_hz`` seconds
from the bag start, as the fusion node's timer does under ``use_sim_time``. Encoding is
instantaneous here, so live and offline presence agree except within a tick of a transition.

Reported per phase (phases = stretches between drop-plan event boundaries): output rate,
presence and mean gate weight per modality, and, when the bag has the ground-truth topic
(``aecf-ros make-bag`` writes it), macro mAP, micro F1 at ``score_threshold`` and exact-match
rate. A bag without labels still gets the presence / weights timeline.
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from aecf_ros import graph as T
from aecf_ros.apps.bag_graph import GROUND_TRUTH_TYPE, BagGraph, settings_from_parameters  # noqa: F401
from aecf_ros.bag.bag_io import BagError
from aecf_ros.bag.damage import BagDamage
from aecf_ros.runtime.drop_plan import DropPlan, DropPlanError, add_plan_arguments, plan_from_args


# ---------------------------------------------------------------------------------------------
# settings: the fusion node's parameters (graph.py defaults, optionally a --params-file)
# ---------------------------------------------------------------------------------------------
def fusion_parameters(params_file: Optional[str] = None, overrides: Optional[Mapping[str, Any]] = None,
                      namespace: str = "") -> dict:
    """Flat ``{name: value}`` of the fusion node's parameters: defaults, then the params file's
    ``fusion_node`` (or ``/**``) section, then ``overrides``."""
    from aecf_ros import graph
    from aecf_ros.runtime.sensor_graph import declared_sensor_set

    # the per-sensor parameters (timeout_s.<name>, ...) of the sensors the file declares
    sensor_set = declared_sensor_set([params_file] if params_file else [], namespace)
    values = {p.name: p.default for p in graph.fusion_parameters(
        {s.name: dict(s.kind_record.defaults) for s in sensor_set})}
    if params_file:
        from aecf_ros.runtime.params_file import coerce_to_declared, read_params_file

        # the node's own view of the file (rcl's typing and section matching), as launched
        fqn = "/" + "/".join(x for x in (namespace.strip("/"), "fusion_node") if x)
        values.update(coerce_to_declared(read_params_file(params_file, fqn), values, f"{params_file}: "))
    for k, v in (overrides or {}).items():
        if k not in values:
            raise ValueError(f"unknown fusion parameter {k!r}")
        values[k] = type(values[k])(v) if not isinstance(values[k], bool) else bool(v)
    return values


def load_model_for_eval(spec: str, seed: int = 0, log: Callable[[str], None] = print):
    """``default`` (shipped checkpoint; an untrained model, with a warning, while none ships),
    ``untrained`` (``model.build_model()`` seeded), or a bundle path."""
    import torch

    from aecf_ros.model import DEFAULT_MODEL_PATH, build_model, load_model

    if spec == "untrained" or (spec == "default" and not DEFAULT_MODEL_PATH.exists()):
        if spec == "default":
            log(f"warning: no shipped checkpoint at {DEFAULT_MODEL_PATH}; using an UNTRAINED model "
                f"(scores are meaningless, presence and timing are not)")
        torch.manual_seed(seed)
        model = build_model()
        model.eval()
        return model, "untrained"
    model = load_model(None if spec == "default" else spec, device="cpu")
    return model, spec


# ---------------------------------------------------------------------------------------------
# the simulation
# ---------------------------------------------------------------------------------------------
@dataclass
class Tick:
    t: float  # seconds since the bag start
    published: bool
    reason: str  # "" when published, else the NoOutput reason
    present: list[bool]
    weights: list[float]
    scores: Optional[list[float]]
    truth: Optional[list[int]]
    scene_index: Optional[int]


@dataclass
class Evaluation:
    bag: str
    model: str
    modalities: list[str]
    class_names: list[str]
    plan: DropPlan
    publish_rate_hz: float
    parameters: dict
    duration_s: float
    ticks: list[Tick] = field(default_factory=list)
    input_drops: dict = field(default_factory=dict)  # modality -> reason -> count (encoder side)
    plan_counters: dict = field(default_factory=dict)
    has_truth: bool = False
    ground_truth_dropped: int = 0  # ground-truth messages that could not be read (logged)
    #: damaged messages skipped (topic -> reason -> count) and where a damaged file stopped the read
    damage: BagDamage = field(default_factory=BagDamage)
    start_ns: int = 0  # the bag's first message (tick times count from it)
    wall_s: float = 0.0


def evaluate_bag(path: str | Path, plan: DropPlan, model, model_name: str = "model",
                 parameters: Optional[dict] = None, ground_truth_topic: str = T.GROUND_TRUTH_TOPIC,
                 log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
                 labels_file: Optional[str] = None) -> Evaluation:
    """Run the node graph's computation over the bag (:class:`~aecf_ros.apps.bag_graph.BagGraph`)
    and record what the fusion node publishes at every tick. ``labels_file``: the truth from a
    label file (:mod:`aecf_ros.data.labels`, in the model's classes) instead of the topic."""
    from aecf_ros.runtime.fusion_engine import NoOutput

    track = None
    if labels_file:
        from aecf_ros.bag.bag_io import BagReader
        from aecf_ros.data.labels import LabelError, read_labels

        with BagReader(path) as bag:
            info = bag.info()
        try:
            track = read_labels(labels_file, model.class_names, bag_start_ns=info.start_ns, bag_end_ns=info.end_ns)
        except LabelError as exc:
            raise BagError(str(exc)) from None

    wall0 = time.perf_counter()
    parameters = parameters or fusion_parameters()
    graph = BagGraph(model, parameters, plan, log)
    engine, modalities = graph.engine, graph.modalities
    ticks: list[Tick] = []

    def on_tick(now_ns: int, truth) -> None:
        out = engine.step(now_ns / 1e9).output
        if track is not None:
            found = track.at(now_ns)
            truth = None if found is None else (now_ns, found, None)
        labels = truth[1].tolist() if truth is not None else None
        scene = truth[2] if truth is not None else None
        t = (now_ns - graph.start_ns) / 1e9
        if isinstance(out, NoOutput):
            present = engine.present_at(now_ns / 1e9)
            ticks.append(Tick(t, False, out.reason, present, [0.0] * len(modalities), None, labels, scene))
        else:
            ticks.append(Tick(t, True, "", list(out.present), [float(w) for w in out.weights],
                              [float(s) for s in out.scores], labels, scene))

    run = graph.run(path, on_tick, ground_truth_topic=None if track is not None else ground_truth_topic)
    result = Evaluation(str(path), model_name, modalities, list(model.class_names), plan, graph.rate_hz,
                        dict(parameters), run.duration_s, ticks=ticks, input_drops=run.input_drops,
                        plan_counters=run.plan_counters, has_truth=run.has_truth or track is not None,
                        ground_truth_dropped=run.ground_truth_dropped, damage=run.damage,
                        start_ns=run.start_ns)
    result.wall_s = time.perf_counter() - wall0
    return result


# ---------------------------------------------------------------------------------------------
# metrics and report
# ---------------------------------------------------------------------------------------------
def _phase_metrics(ticks: list[Tick], modalities, threshold: float, has_truth: bool) -> dict:
    from aecf_ros.core.metrics import macro_map

    n = len(ticks)
    published = [t for t in ticks if t.published]
    out: dict[str, Any] = {
        "ticks": n,
        "outputs": len(published),
        "output_rate": len(published) / n if n else None,
        "no_output": {},
        "presence": {m: (sum(t.present[i] for t in ticks) / n if n else None) for i, m in enumerate(modalities)},
        "mean_weight": {m: (float(np.mean([t.weights[i] for t in published])) if published else None)
                        for i, m in enumerate(modalities)},
    }
    for t in ticks:
        if not t.published:
            out["no_output"][t.reason] = out["no_output"].get(t.reason, 0) + 1
    scored = [t for t in published if t.truth is not None]
    if has_truth:
        out["labelled_outputs"] = len(scored)
        if scored:
            scores = np.array([t.scores for t in scored], np.float64)
            labels = np.array([t.truth for t in scored], np.int64)
            pred = scores >= threshold
            tp = float((pred & (labels == 1)).sum())
            fp = float((pred & (labels == 0)).sum())
            fn = float((~pred & (labels == 1)).sum())
            try:
                out["macro_map"] = float(macro_map(scores, labels))
            except ValueError:
                out["macro_map"] = None
            out["micro_f1"] = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else None
            out["exact_match"] = float((pred == (labels == 1)).all(axis=1).mean())
    return out


def report(ev: Evaluation) -> dict:
    """The JSON document: settings, per-phase and overall metrics, counters and the timeline."""
    threshold = float(ev.parameters["score_threshold"])
    phases = []
    for ph in ev.plan.phases(max(ev.duration_s, 1e-9)):
        inside = [t for t in ev.ticks if ph.start <= t.t < ph.end or (ph.end >= ev.duration_s and t.t >= ph.start)]
        phases.append({"name": ph.name, "start_s": ph.start, "end_s": ph.end, "absent_by_plan": sorted(ph.absent),
                       **_phase_metrics(inside, ev.modalities, threshold, ev.has_truth)})
    return {
        "bag": ev.bag,
        "model": ev.model,
        "modalities": ev.modalities,
        "class_names": ev.class_names,
        "plan": ev.plan.describe(),
        "publish_rate_hz": ev.publish_rate_hz,
        "fusion_parameters": ev.parameters,
        "duration_s": ev.duration_s,
        "has_ground_truth": ev.has_truth,
        "ground_truth_dropped": ev.ground_truth_dropped,
        # bag/damage.py: topic -> reason (undeserializable, zeroed) -> messages skipped
        "damaged_messages": ev.damage.as_dict()["messages"],
        "truncated": ev.damage.truncated,
        "truncated_after_s": (None if ev.damage.truncated_after_ns is None
                              else (ev.damage.truncated_after_ns - ev.start_ns) / 1e9),
        "overall": _phase_metrics(ev.ticks, ev.modalities, threshold, ev.has_truth),
        "phases": phases,
        "plan_counters": ev.plan_counters,
        "input_drops": ev.input_drops,
        "wall_s": ev.wall_s,
        "timeline": [
            {"t": round(t.t, 6), "published": t.published, "reason": t.reason,
             "present": dict(zip(ev.modalities, t.present)),
             "weights": dict(zip(ev.modalities, [round(w, 5) for w in t.weights])),
             "scores": None if t.scores is None else [round(s, 5) for s in t.scores],
             "truth": t.truth, "scene_index": t.scene_index}
            for t in ev.ticks
        ],
    }


def plot_timeline(ev: Evaluation, path: str | Path) -> None:
    """PNG: presence per modality (plan windows shaded), gate weights, scores vs truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([x.t for x in ev.ticks])
    rows = 3 if any(x.scores is not None for x in ev.ticks) else 2
    fig, axes = plt.subplots(rows, 1, figsize=(12, 2.2 + 2.2 * rows), sharex=True,
                             gridspec_kw={"height_ratios": [1, 1.2, 2][:rows]})
    colours = {"camera": "tab:blue", "lidar": "tab:orange", "text": "tab:green"}
    ax = axes[0]
    for i, m in enumerate(ev.modalities):
        present = np.array([x.present[i] for x in ev.ticks], bool)
        ax.fill_between(t, i + 0.1, i + 0.9, where=present, step="post", color=colours.get(m, "grey"), lw=0)
    for e in ev.plan.events:
        if e.modality in ev.modalities:
            i = ev.modalities.index(e.modality)
            end = min(e.end, ev.duration_s)
            ax.add_patch(plt.Rectangle((e.start, i), end - e.start, 1, fill=False, hatch="//",
                                       edgecolor="red", lw=0.8))
            ax.text(e.start, i + 0.5, " " + e.kind, va="center", fontsize=7, color="red")
    ax.set_yticks([i + 0.5 for i in range(len(ev.modalities))], ev.modalities)
    ax.set_ylim(0, len(ev.modalities))
    ax.set_title(f"{Path(ev.bag).name}: presence (filled) vs plan (hatched) — {ev.plan.describe()}", fontsize=9)
    ax = axes[1]
    for i, m in enumerate(ev.modalities):
        ax.plot(t, [x.weights[i] for x in ev.ticks], label=m, color=colours.get(m, "grey"), lw=1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("gate weight")
    ax.legend(loc="upper right", fontsize=7, ncol=len(ev.modalities))
    if rows == 3:
        ax = axes[2]
        scores = np.array([x.scores if x.scores is not None else [np.nan] * len(ev.class_names) for x in ev.ticks])
        ax.imshow(scores.T, aspect="auto", interpolation="nearest", vmin=0, vmax=1, cmap="viridis",
                  extent=(t[0] if len(t) else 0, t[-1] if len(t) else 1, len(ev.class_names) - 0.5, -0.5))
        truth_t, truth_c = [], []
        for x in ev.ticks[::max(1, len(ev.ticks) // 300)]:
            if x.truth is not None:
                for c, v in enumerate(x.truth):
                    if v:
                        truth_t.append(x.t)
                        truth_c.append(c)
        ax.scatter(truth_t, truth_c, s=3, c="red", marker="s", label="truth")
        ax.set_yticks(range(len(ev.class_names)), ev.class_names, fontsize=6)
        ax.set_ylabel("score (colour) / truth (red)")
    axes[-1].set_xlabel("seconds since bag start")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def add_arguments(parser) -> None:
    parser.add_argument("bag", help="rosbag2 directory (sqlite3 or mcap)")
    parser.add_argument("--model", default="default",
                        help="model bundle path, 'default' (shipped checkpoint) or 'untrained'")
    parser.add_argument("--json", dest="json_out", default=None, metavar="OUT.json", help="write the report here")
    parser.add_argument("--plot", default=None, metavar="TIMELINE.png", help="write the timeline plot here")
    parser.add_argument("--params-file", default=None,
                        help="ROS params YAML with a fusion_node section (timeouts, publish_rate_hz, ...) and the "
                             "robot's declared sensors; default: the one `aecf-ros run` uses (config/aecf.yaml)")
    parser.add_argument("--publish-rate", type=float, default=None, help="override publish_rate_hz")
    parser.add_argument("--ground-truth-topic", default=T.GROUND_TRUTH_TOPIC)
    parser.add_argument("--labels", default=None, metavar="FILE",
                        help="the truth from this label file (start,end,classes; the model's classes) "
                             "instead of the ground-truth topic")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a busy 2-core machine more threads made "
                             "the camera encoder ~100x slower; results do not depend on it)")
    add_plan_arguments(parser)


def _fmt(x, pct=False) -> str:
    if x is None:
        return "   -  "
    return f"{100 * x:5.1f}%" if pct else f"{x:6.3f}"


def run(args) -> int:
    def log(line: str) -> None:
        print(line, file=sys.stderr)

    try:
        overrides = {"publish_rate_hz": args.publish_rate} if args.publish_rate else None
        params_file = args.params_file
        if params_file is None:  # the file `aecf-ros run` uses by default, for the same settings
            from aecf_ros.nodes.runner import default_params_file

            params_file = default_params_file()
        from aecf_ros.runtime.sensor_graph import declared_sensor_set
        from aecf_ros.sensors import DEFAULT_SENSOR_SET, SensorConfigError

        try:
            sensor_set = declared_sensor_set([params_file] if params_file else [])
        except SensorConfigError as exc:
            raise ValueError(f"{params_file}: {exc}") from None
        # a robot's own sensor set: plans name its sensors, on their declared topics
        plan = plan_from_args(args, None if sensor_set.names == DEFAULT_SENSOR_SET.names else sensor_set)
        parameters = fusion_parameters(params_file, overrides)
        if not parameters["publish_rate_hz"] > 0:
            raise ValueError("publish rate must be > 0")
    except (DropPlanError, ValueError) as exc:
        print(f"aecf-ros evaluate-bag: error: {exc}", file=sys.stderr)
        return 2
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        from aecf_ros.model import ModelLoadError

        model, name = load_model_for_eval(args.model, seed=args.seed or 0, log=log)
    except ModelLoadError as exc:
        print(f"aecf-ros evaluate-bag: error: {exc}", file=sys.stderr)
        return 2
    try:
        ev = evaluate_bag(args.bag, plan, model, name, parameters, args.ground_truth_topic, log=log,
                          labels_file=args.labels)
    except BagError as exc:
        print(f"aecf-ros evaluate-bag: error: {exc}", file=sys.stderr)
        return 1
    doc = report(ev)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(doc, indent=1, allow_nan=False, default=_json_default))
    if args.plot:
        plot_timeline(ev, args.plot)
    print(f"{ev.bag}: {ev.duration_s:.1f} s, {len(ev.ticks)} fusion ticks at {ev.publish_rate_hz:g} Hz, "
          f"model {ev.model}, plan: {plan.describe()} ({ev.wall_s:.1f} s)")
    head = f"  {'phase':40s} {'s':>11s} {'out':>6s} " + " ".join(f"{m[:6]:>6s}" for m in ev.modalities)
    if ev.has_truth:
        head += f" {'mAP':>6s} {'F1':>6s}"
    print(head)
    for ph in doc["phases"] + [dict(doc["overall"], name="overall", start_s=0.0, end_s=ev.duration_s)]:
        line = (f"  {ph['name'][:40]:40s} {ph['start_s']:5.1f}-{min(ph['end_s'], ev.duration_s):5.1f} "
                f"{_fmt(ph['output_rate'], True)} " + " ".join(_fmt(ph["presence"][m], True) for m in ev.modalities))
        if ev.has_truth:
            line += f" {_fmt(ph.get('macro_map'))} {_fmt(ph.get('micro_f1'))}"
        print(line)
    for line in ev.damage.summary_lines(ev.start_ns):
        print(f"  {line}")
    for m in ev.modalities:
        dropped = {r: n for r, n in ev.input_drops.get(m, {}).items() if n}
        if dropped:
            print(f"  {m} inputs dropped: " + ", ".join(f"{r} {n}" for r, n in sorted(dropped.items())))
    if args.json_out:
        print(f"  report: {args.json_out}")
    if args.plot:
        print(f"  timeline: {args.plot}")
    return 0


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")
