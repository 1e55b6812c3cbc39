"""`aecf-ros replay BAG`: publish a bag on its recorded schedule, with a sensor drop plan and /clock.

Like ``ros2 bag play --clock`` (which is not installable here), plus the drop plan of
``aecf_ros.runtime.drop_plan``: messages are published as the stored CDR bytes (a frozen copy
with ``:restamp`` gets its header stamp patched in the bytes). Each is deserialised first, only to
apply the damage rule every bag tool shares (``bag/damage.py``: a torn or zeroed message is
skipped and counted per topic; a damaged file is played up to the damage). ``/clock``
(rosgraph_msgs/Clock) carries bag time, so nodes started with ``use_sim_time:=true`` judge
message ages exactly as they were recorded, at any ``--rate``.

Example::

    aecf-ros run --ros-args -p use_sim_time:=true &     # or: ros2 launch aecf_ros replay.launch.py
    aecf-ros replay demo_bag --drop lidar@10-25 --stall text@30 --rate 1.0
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from aecf_ros.bag.bag_io import BagError, BagReader, message_class
from aecf_ros.bag.damage import BagDamage, DamageFilter
from aecf_ros.runtime.drop_plan import DropPlan, DropPlanError, PlanApplier, add_plan_arguments, plan_from_args
from aecf_ros.bag.schedule import plan_topics_missing, planned_messages
from aecf_ros.graph import CLOCK_TOPIC


@dataclass
class ReplayStats:
    published: dict[str, int] = field(default_factory=dict)
    plan: dict = field(default_factory=dict)
    loops: int = 0
    interrupted: bool = False
    bag_seconds: float = 0.0
    wall_seconds: float = 0.0
    #: damaged messages not published (topic -> reason -> count, all loops) and where a damaged
    #: file ended the playback (``damage.truncated``)
    damage: BagDamage = field(default_factory=BagDamage)
    start_ns: int = 0  # the bag's first message


class BagReplayer:
    """Publishes one bag through an rclpy node (give a context to run inside a test process).

    ``stop`` (a threading.Event) ends the replay between messages; Ctrl-C in the command sets it.
    """

    def __init__(self, path: str | Path, plan: DropPlan | None = None, *, rate: float = 1.0,
                 start_offset_s: float = 0.0, loop: bool = False, clock: bool = True,
                 clock_hz: float = 100.0, topics: Sequence[str] | None = None, skip_unknown: bool = False,
                 delay_s: float = 1.0, wait_for: Sequence[str] = (), wait_timeout_s: float = 30.0,
                 check_messages: bool = True, context=None, node_name: str = "aecf_bag_replay",
                 log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)):
        if not rate > 0:
            raise ValueError(f"--rate must be > 0, got {rate}")
        if start_offset_s < 0:
            raise ValueError(f"--start-offset must be >= 0, got {start_offset_s}")
        if not clock_hz > 0:
            raise ValueError(f"--clock-hz must be > 0, got {clock_hz}")
        self.path = Path(path)
        self.plan = plan or DropPlan()
        self.rate, self.start_offset_s, self.loop = float(rate), float(start_offset_s), bool(loop)
        self.clock, self.clock_period = bool(clock), 1.0 / float(clock_hz)
        self.topics, self.skip_unknown, self.delay_s = topics, skip_unknown, max(0.0, float(delay_s))
        self.context, self.node_name, self.log = context, node_name, log
        self.wait_for, self.wait_timeout_s = list(wait_for or ()), float(wait_timeout_s)
        self.stop = threading.Event()
        self.applier = PlanApplier(self.plan)
        self.stats = ReplayStats()
        # deserializing costs ~0.1-7 ms a message (docs/RELIABILITY.md "Damaged bags"); without the
        # check a torn message reaches the subscribers, whose deserialization then fails
        self.check_messages = bool(check_messages)
        self.damage = DamageFilter(log, self.stats.damage)

    # -- set-up ---------------------------------------------------------------------------------
    def _select_topics(self, info) -> dict[str, str]:
        wanted = {t.name: t.msgtype for t in info.topics if self.topics is None or t.name in self.topics}
        if self.topics:
            missing = sorted(set(self.topics) - set(wanted))
            if missing:
                raise BagError(f"topics not in {self.path}: {', '.join(missing)} "
                               f"(bag has {', '.join(t.name for t in info.topics)})")
        out = {}
        for topic, msgtype in wanted.items():
            try:
                message_class(msgtype)
            except BagError as exc:
                if not self.skip_unknown:
                    raise BagError(f"topic {topic}: {exc}; pass --skip-unknown to replay the other topics") from None
                self.log(f"skipping {topic}: {exc}")
                continue
            out[topic] = msgtype
        if not out:
            raise BagError(f"nothing to replay in {self.path}")
        return out

    def run(self) -> ReplayStats:
        import rclpy
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.signals import SignalHandlerOptions
        from rclpy.time import Time
        from rosgraph_msgs.msg import Clock

        def time_from_ns(nanoseconds: int):
            return Time(nanoseconds=int(nanoseconds)).to_msg()

        with BagReader(self.path) as bag:
            info = bag.info()
            self.stats.start_ns = info.start_ns
            selected = self._select_topics(info)
            for modality in plan_topics_missing(self.plan, list(selected)):
                self.log(f"warning: the plan acts on {modality} but none of its topics "
                         f"({', '.join(self.plan.topics[modality])}) is in the bag; see --topic-map")
            own_context = self.context is None
            context = self.context
            if own_context:
                context = rclpy.context.Context()
                # our own SIGINT/SIGTERM handling stops the loop between messages (run() below)
                rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
            node = rclpy.create_node(self.node_name, context=context)
            try:
                qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                                 reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
                pubs = {t: node.create_publisher(message_class(m), t, qos) for t, m in selected.items()}
                clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, QoSProfile(depth=1)) if self.clock else None
                self.log(f"replaying {self.path} ({info.duration_s:.1f} s, {len(pubs)} topics) at rate "
                         f"{self.rate:g}; plan: {self.plan.describe()}")
                self._play(node, bag, info, pubs, clock_pub, Clock, time_from_ns)
            finally:
                node.destroy_node()
                if own_context and context.ok():
                    rclpy.shutdown(context=context)
        self.stats.plan = self.applier.counters.as_dict()
        return self.stats

    # -- the loop ---------------------------------------------------------------------------------
    def _play(self, node, bag, info, pubs, clock_pub, Clock, time_from_ns) -> None:  # noqa: N803
        wall_t0 = time.monotonic()
        first_ns = info.start_ns + int(round(self.start_offset_s * 1e9))

        def publish_clock(bag_ns: int) -> None:
            if clock_pub is not None:
                clock_pub.publish(Clock(clock=time_from_ns(bag_ns)))

        # Pre-roll: let subscribers discover us, with /clock already at the bag's start time.
        # --wait-for topics must have a matched subscriber first (DDS discovery of a new
        # participant took >2 s on a busy machine), then the pre-roll still runs in full.
        from aecf_ros.nodes.discovery import TopicSubscribers, wait_for_discovery

        # A --wait-for topic this bag does not publish (the encoders' /dropout/... inputs behind the
        # sensor_dropout relay, the fusion node's embedding topics) waits for a subscriber in the graph.
        endpoints = {t: pubs[t] if t in pubs else TopicSubscribers(node, t) for t in self.wait_for}
        if self.wait_for:
            self.log(f"waiting up to {self.wait_timeout_s:g} s for subscribers on {', '.join(self.wait_for)}")
        missing = wait_for_discovery(endpoints, self.wait_timeout_s,
                                     while_waiting=lambda: publish_clock(first_ns), stop=self.stop.is_set)
        if missing and not self.stop.is_set():
            raise BagError(f"no subscriber on {', '.join(missing)} after {self.wait_timeout_s:g} s")
        end_wait = time.monotonic() + self.delay_s
        while time.monotonic() < end_wait and not self.stop.is_set():
            publish_clock(first_ns)
            time.sleep(min(self.clock_period, 0.05))
        while not self.stop.is_set():
            self.applier.reset()
            wall_start = time.monotonic()
            next_clock = wall_start
            last_ns = first_ns
            for item in planned_messages(self.damage.readable(bag.messages(list(pubs))), self.plan, info.start_ns,
                                         self.applier, self.start_offset_s):
                if self.check_messages and self.damage.message(item.topic, item.msgtype, item.data) is None:
                    continue  # torn or zeroed: counted in stats.damage, never published
                target = wall_start + (item.time_ns - first_ns) / 1e9 / self.rate
                while True:
                    now = time.monotonic()
                    if self.stop.is_set():
                        break
                    if now >= next_clock:
                        publish_clock(first_ns + int((now - wall_start) * self.rate * 1e9))
                        next_clock = now + self.clock_period
                    if now >= target:
                        break
                    time.sleep(max(0.0, min(target, next_clock, now + 0.05) - now))
                if self.stop.is_set():
                    break
                pubs[item.topic].publish(item.data)
                self.stats.published[item.topic] = self.stats.published.get(item.topic, 0) + 1
                last_ns = item.time_ns
            self.stats.bag_seconds += (last_ns - first_ns) / 1e9
            if self.stop.is_set() or not self.loop:
                break
            self.stats.loops += 1
        self.stats.interrupted = self.stop.is_set()
        self.stats.wall_seconds = time.monotonic() - wall_t0


def add_arguments(parser) -> None:
    parser.add_argument("bag", help="rosbag2 directory (sqlite3 or mcap)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default 1.0)")
    parser.add_argument("--start-offset", type=float, default=0.0, metavar="S",
                        help="skip the first S seconds of the bag")
    parser.add_argument("--loop", action="store_true", help="start again at the end (until Ctrl-C)")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument("--clock-hz", type=float, default=100.0, help="/clock publish rate, wall Hz (default 100)")
    parser.add_argument("--preroll", type=float, default=1.0, metavar="S",
                        help="wall seconds to wait for subscribers before the first message (default 1)")
    parser.add_argument("--topics", nargs="+", default=None, help="replay only these topics")
    parser.add_argument("--wait-for", nargs="+", default=(), metavar="TOPIC",
                        help="before playing, wait until these topics have a subscriber (a topic of the bag: "
                             "a matched one; any other topic, e.g. /dropout/...: one seen in the graph)")
    parser.add_argument("--wait-timeout", type=float, default=30.0, metavar="S",
                        help="give up (exit 1) after S seconds of --wait-for (default 30)")
    parser.add_argument("--no-message-check", action="store_true",
                        help="publish the stored bytes without deserializing them first (saves up to a few ms "
                             "a message; a torn or zeroed message is then published, not skipped and counted)")
    parser.add_argument("--skip-unknown", action="store_true",
                        help="skip topics whose message type has no Python package here (default: error)")
    parser.add_argument("--params", action="append", default=None, metavar="PARAMS_FILE",
                        help="the robot's params file(s): drop plans name its declared sensors "
                             "(--drop rear_camera@5-10), on their declared topics")
    add_plan_arguments(parser)


def run(args) -> int:
    try:
        sensor_set = None
        if getattr(args, "params", None):
            from aecf_ros.runtime.sensor_graph import declared_sensor_set

            sensor_set = declared_sensor_set(args.params)
        plan = plan_from_args(args, sensor_set)
        replayer = BagReplayer(args.bag, plan, rate=args.rate, start_offset_s=args.start_offset, loop=args.loop,
                               clock=not args.no_clock, clock_hz=args.clock_hz, topics=args.topics,
                               skip_unknown=args.skip_unknown, delay_s=args.preroll, wait_for=args.wait_for,
                               wait_timeout_s=args.wait_timeout,
                               check_messages=not getattr(args, "no_message_check", False))
    except (DropPlanError, ValueError) as exc:
        print(f"aecf-ros replay: error: {exc}", file=sys.stderr)
        return 2

    from aecf_ros.nodes.session import RosSession

    # Ctrl-C / SIGTERM stop the loop between messages, so the report below still prints
    try:
        with RosSession(on_signal=replayer.stop.set) as ros:
            replayer.context = ros.context
            replayer.run()
    except BagError as exc:
        print(f"aecf-ros replay: error: {exc}", file=sys.stderr)
        return 1
    if ros.interrupted and not replayer.stats.wall_seconds:
        return 0  # interrupted before playing (second Ctrl-C, or during set-up)
    stats = replayer.stats
    print(("interrupted after " if stats.interrupted else "replayed ") +
          f"{stats.bag_seconds:.1f} s of bag in {stats.wall_seconds:.1f} s wall"
          + (f", {stats.loops} loops" if stats.loops else ""), file=sys.stderr)
    for topic, count in sorted(stats.published.items()):
        print(f"  {topic:32s} {count:6d} published", file=sys.stderr)
    dropped = {k: v for k, v in stats.plan.items() if k != "passed" and v}
    if dropped:
        print(f"  plan: {dropped}", file=sys.stderr)
    for line in stats.damage.summary_lines(stats.start_ns):
        print(f"  {line}", file=sys.stderr)
    return 0
