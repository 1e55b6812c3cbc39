""":class:`RosSession`, the one clean start-up/shutdown of every aecf_ros process, and
:func:`run_node`, the ``main()`` body of every node."""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Optional

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode

from aecf_ros.nodes.lifecycle import bring_up


class ShutdownRequested(KeyboardInterrupt):
    """Raised in the main thread by :class:`RosSession` on SIGINT (Ctrl-C) or SIGTERM."""


#: how long one executor wait may block: the longest a Ctrl-C waits to be noticed while idle
SPIN_PERIOD_S = 0.1


class RosSession:
    """The one copy of the clean-shutdown logic; every aecf_ros entry point runs inside one.

    ::

        with RosSession(args) as ros:
            node = ros.add_node(MyNode(context=ros.context))
            if ros.bring_up(node):
                ros.spin()
        return ros.exit_code

    Why not rclpy's own signal handlers: they shut the rcl context down from a helper thread
    the moment SIGINT arrives, while the main thread may be building a wait set, publishing from
    a timer or loading a model in ``on_configure``. Each of those then fails with an ``RCLError``
    (``context is not valid``) instead of a ``KeyboardInterrupt`` (a traceback, or a lifecycle
    transition that "fails" and exits 1), and the ``KeyboardInterrupt`` Python queued for the
    same signal goes off later, in the middle of the cleanup. Under CPU load both orders
    happen. Here SIGINT/SIGTERM raise :class:`ShutdownRequested` in the main thread only, the
    context stays valid until this class shuts it down, and cleanup runs once, in order
    (executor, then each node once, then the context), with later signals only counted.

    Leaving the ``with`` block with ``KeyboardInterrupt``, ``ExternalShutdownException`` or,
    once the context is no longer ok (someone else shut it down), an ``RCLError`` /
    ``InvalidHandle`` is a normal end: suppressed, ``interrupted`` set, ``exit_code`` 0 unless
    the body set another. Any other exception propagates. With ``on_signal``, the first signal
    calls it instead of raising (the body stops itself), a second one raises.
    """

    def __init__(self, args: Optional[list[str]] = None, *, context=None, handle_signals: bool = True,
                 on_signal: Optional[Callable[[], None]] = None):
        from rclpy.context import Context

        self.args = args
        self.on_signal = on_signal
        self.context = context if context is not None else Context()
        self.handle_signals = handle_signals
        self.nodes: list = []
        self.executor: Optional[SingleThreadedExecutor] = None
        self.exit_code = 0
        self.interrupted = False
        self._closing = False
        self._signals_while_closing = 0
        self._previous_handlers: dict = {}

    # ------------------------------------------------------------------ set-up
    def __enter__(self) -> "RosSession":
        from rclpy.signals import SignalHandlerOptions

        if self.handle_signals:
            self._install_handlers()
        try:
            rclpy.init(args=self.args if self.args is not None else [], context=self.context,
                       signal_handler_options=SignalHandlerOptions.NO)
        except BaseException:
            self._restore_handlers()
            raise
        return self

    def _install_handlers(self) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread (tests run us in-process)
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_handlers(self) -> None:
        import signal

        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous_handlers = {}

    def _on_signal(self, signum, _frame) -> None:
        if self._closing:
            # cleanup is bounded and already under way: a second Ctrl-C must not turn it into a
            # traceback; a third means the user really wants out of a cleanup that hangs.
            self._signals_while_closing += 1
            if self._signals_while_closing >= 2:
                os._exit(1)
            return
        if not self.interrupted:
            self.interrupted = True
            if self.on_signal is not None:
                self.on_signal()  # cooperative stop (bag replay finishes its report)
                return
            raise ShutdownRequested()
        if self.on_signal is not None:
            raise ShutdownRequested()  # the second Ctrl-C does not wait for the cooperative stop

    # ------------------------------------------------------------------ the body's helpers
    def add_node(self, node):
        """Track ``node`` so the session destroys it (exactly once) on the way out."""
        self.nodes.append(node)
        if self.executor is not None:
            self.executor.add_node(node)
        return node

    def get_executor(self) -> SingleThreadedExecutor:
        """The session's SingleThreadedExecutor with every added node (MultiThreaded is broken here)."""
        if self.executor is None:
            self.executor = SingleThreadedExecutor(context=self.context)
            for node in self.nodes:
                self.executor.add_node(node)
        return self.executor

    def bring_up(self, node) -> bool:
        """:func:`bring_up` that tells a real failure from a shutdown during the transitions."""
        if bring_up(node):
            return True
        if not self.context.ok():
            raise ExternalShutdownException()
        return False

    @property
    def ok(self) -> bool:
        return self.context.ok() and not self.interrupted

    def spin_once(self, timeout_sec: float = SPIN_PERIOD_S) -> None:
        self.get_executor().spin_once(timeout_sec=min(float(timeout_sec), SPIN_PERIOD_S))

    def spin(self, until: Optional[Callable[[], bool]] = None, duration_s: Optional[float] = None) -> None:
        """Spin until shutdown, ``until()`` is true or ``duration_s`` has passed.

        Waits are at most :data:`SPIN_PERIOD_S` long so a signal is acted on promptly (no rclpy
        signal guard condition wakes the executor here)."""
        deadline = None if duration_s is None else time.monotonic() + float(duration_s)
        executor = self.get_executor()
        while self.context.ok() and not (until is not None and until()):
            if deadline is not None and time.monotonic() >= deadline:
                return
            executor.spin_once(timeout_sec=SPIN_PERIOD_S)

    # ------------------------------------------------------------------ the end
    def is_shutdown_exception(self, exc: Optional[BaseException]) -> bool:
        """True for what a normal shutdown looks like: Ctrl-C / SIGTERM, an external shutdown,
        or an rcl error raised because the context is no longer valid."""
        from rclpy.exceptions import InvalidHandle
        from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy

        if isinstance(exc, (KeyboardInterrupt, ExternalShutdownException)):
            return True
        return isinstance(exc, (_rclpy.RCLError, InvalidHandle)) and not self.context.ok()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._closing = True
        try:
            suppress = exc is not None and self.is_shutdown_exception(exc)
            if suppress:
                self.interrupted = True
            self.close()
            return suppress
        finally:
            self._restore_handlers()

    def close(self) -> None:
        """Executor, then each node once, then the context. Idempotent."""
        self._closing = True
        if self.executor is not None:
            self.executor.shutdown(timeout_sec=1.0)
            self.executor = None
        nodes, self.nodes = self.nodes, []
        for node in reversed(nodes):
            try:
                node.destroy_node()
            except Exception as exc:  # noqa: BLE001 - one node's failed teardown must not skip the rest
                if self.context.ok():
                    print(f"error destroying {node.get_name()}: {type(exc).__name__}: {exc}", file=sys.stderr)
        self.context.try_shutdown()


def run_node(node_factory: Callable[..., Any], args: Optional[list[str]] = None, *,
             config_errors: tuple[type[BaseException], ...] = (),
             on_exit: Optional[Callable[[Any], None]] = None) -> int:
    """``main()`` body for every aecf_ros node: init, create, autostart, spin, clean exit.

    Exits 0 on Ctrl-C / SIGTERM / external shutdown at any moment (no traceback; see
    :class:`RosSession`). A lifecycle node whose autostart fails (model file missing, ``device``
    ``cuda`` without a GPU: the reason is logged) keeps running, unconfigured, so a lifecycle
    manager can retry. Exits 2 if creating the node raised one of ``config_errors``
    (printed as ``<node>: error: ...``). ``on_exit(node)`` runs before the node is destroyed
    (after Ctrl-C /rosout may be gone: print, do not log).
    """
    node = None
    try:
        with RosSession(args if args is not None else sys.argv) as ros:
            try:
                node = ros.add_node(node_factory(context=ros.context))
                lifecycle = isinstance(node, LifecycleNode)
                if lifecycle and node.get_parameter("autostart").value and not ros.bring_up(node):
                    # the lifecycle convention: a failed configure leaves the node alive and
                    # unconfigured, for a lifecycle manager (or `ros2 lifecycle set`) to retry
                    node.get_logger().warning(
                        "waiting unconfigured: fix the cause, then `ros2 lifecycle set "
                        f"{node.get_fully_qualified_name()} configure` (and activate)")
                ros.spin()
            finally:
                if node is not None and on_exit is not None:
                    on_exit(node)
    except config_errors as exc:
        name = getattr(node_factory, "NODE_NAME", None) or getattr(node_factory, "__name__", "node")
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    return ros.exit_code
