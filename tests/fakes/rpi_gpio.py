"""A fake RPi.GPIO: the part of its API bwv uses, behaving like the real one.

It mirrors RPi.GPIO 0.7.x as documented (sourceforge raspberry-gpio-python wiki: "Inputs",
"Outputs", "BasicUsage") and as rpi-lgpio reimplements it bug for bug
(waveform80/rpi-lgpio, ``RPi/GPIO/__init__.py``):

- constants with RPi.GPIO's values: ``BOARD`` 10, ``BCM`` 11, ``OUT`` 0, ``IN`` 1, ``LOW`` 0,
  ``HIGH`` 1, ``PUD_OFF`` 20, ``PUD_DOWN`` 21, ``PUD_UP`` 22, ``RISING`` 31, ``FALLING`` 32,
  ``BOTH`` 33;
- ``setmode(mode)`` (ValueError "A different mode has already been set!"), ``getmode()``,
  ``setwarnings(flag)``;
- ``setup(channel, direction, pull_up_down=PUD_OFF, initial=None)``: a ``pull_up_down``
  other than ``PUD_OFF`` is refused on outputs, and ``initial`` on inputs; any call before
  ``setmode`` raises RuntimeError "Please set pin numbering mode using
  GPIO.setmode(GPIO.BOARD) or GPIO.setmode(GPIO.BCM)";
- ``input(channel)`` -> 0/1 (also on outputs), ``output(channel, value)`` (RuntimeError "The
  GPIO channel has not been set up as an OUTPUT");
- ``add_event_detect(channel, edge, callback=None, bouncetime=None)`` on an input; a second
  one on the same channel raises RuntimeError "Conflicting edge detection already enabled
  for this GPIO channel" with ``flavour="RPi.GPIO"``, and adds the callback with
  ``flavour="rpi-lgpio"``; ``add_event_callback``, ``remove_event_detect``,
  ``event_detected``;
- callbacks run on one separate thread, one after another, called with the channel only;
  an exception in one is printed and does not stop the others;
- ``cleanup(chanlist=None)`` returns the channels to inputs without edge detection.

The board side: :meth:`FakeBoard.drive` changes an input's level and, on a change,
dispatches the edge to the callbacks on the callback thread, returning once they ran.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

BOARD = 10
BCM = 11
OUT = 0
IN = 1
LOW = 0
HIGH = 1
PUD_OFF = 20
PUD_DOWN = 21
PUD_UP = 22
RISING = 31
FALLING = 32
BOTH = 33
UNKNOWN = -1


@dataclass
class _Channel:
    direction: int
    level: int
    pull: int = PUD_OFF
    edge: int | None = None
    callbacks: list[Callable[[int], Any]] = field(default_factory=list)
    detected: bool = False


@dataclass
class FakeBoard:
    """The pins as the fake module sees them, and the outside world's hand on them."""

    flavour: str = "RPi.GPIO"  # or "rpi-lgpio"
    mode: int = UNKNOWN
    warnings: bool = True
    channels: dict[int, _Channel] = field(default_factory=dict)
    writes: list[tuple[int, int]] = field(default_factory=list)
    cleaned: list[int] = field(default_factory=list)
    callback_thread_ids: set[int] = field(default_factory=set)
    callback_errors: list[BaseException] = field(default_factory=list)
    _jobs: queue.Queue[tuple[Callable[[], None], threading.Event] | None] = field(
        default_factory=queue.Queue
    )
    _thread: threading.Thread | None = None

    def level(self, channel: int) -> int:
        return self.channels[channel].level

    def drive(self, channel: int, level: int) -> None:
        """Set an input's level; an actual change runs the edge callbacks (waits for them)."""
        ch = self.channels.get(channel)
        if ch is None or ch.direction != IN:
            raise ValueError(f"channel {channel} is not an input")
        level = int(bool(level))
        if level == ch.level:
            return
        ch.level = level
        wanted = (
            ch.edge == BOTH or (ch.edge == RISING and level) or (ch.edge == FALLING and not level)
        )
        if ch.edge is None or not wanted:
            return
        ch.detected = True
        self._on_callback_thread(lambda: self._fire(channel))

    def pulse(self, channel: int, level: int) -> None:
        """An edge and its return, both before the callback thread gets to run: the
        callbacks for both edges then read the final level."""
        ch = self.channels[channel]
        before = ch.level
        ch.level = int(bool(level))
        ch.level = before
        if ch.edge is not None:
            ch.detected = True
            self._on_callback_thread(lambda: (self._fire(channel), self._fire(channel)))

    def stop(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None

    def _fire(self, channel: int) -> None:
        ch = self.channels.get(channel)
        for cb in list(ch.callbacks if ch else ()):
            try:
                cb(channel)
            except Exception as e:  # noqa: BLE001 - RPi.GPIO prints and carries on
                self.callback_errors.append(e)
                print(e, file=sys.stderr)

    def _on_callback_thread(self, job: Callable[[], Any]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name="fake-gpio-events", daemon=True
            )
            self._thread.start()
        done = threading.Event()
        self._jobs.put((job, done))
        done.wait(5)

    def _serve(self) -> None:
        self.callback_thread_ids.add(threading.get_ident())
        while (item := self._jobs.get()) is not None:
            job, done = item
            try:
                job()
            finally:
                done.set()


@dataclass
class FakeRpiGpioEnv:
    board: FakeBoard
    modules: dict[str, ModuleType]

    @property
    def GPIO(self) -> ModuleType:  # noqa: N802 - the module's own name
        return self.modules["RPi.GPIO"]


def make_fake_rpi_gpio(flavour: str = "RPi.GPIO") -> FakeRpiGpioEnv:
    if flavour not in ("RPi.GPIO", "rpi-lgpio"):
        raise ValueError("flavour is 'RPi.GPIO' or 'rpi-lgpio'")
    board = FakeBoard(flavour=flavour)
    return FakeRpiGpioEnv(board, _build_modules(board))


def _build_modules(board: FakeBoard) -> dict[str, ModuleType]:
    def need_mode() -> None:
        if board.mode == UNKNOWN:
            raise RuntimeError(
                "Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) "
                "or GPIO.setmode(GPIO.BCM)"
            )

    def channel_of(channel: int) -> _Channel:
        need_mode()
        ch = board.channels.get(channel)
        if ch is None:
            raise RuntimeError("You must setup() the GPIO channel first")
        return ch

    def setmode(mode: int) -> None:
        if board.mode != UNKNOWN and mode != board.mode:
            raise ValueError("A different mode has already been set!")
        if mode not in (BOARD, BCM):
            raise ValueError("An invalid mode was passed to setmode()")
        board.mode = mode

    def getmode() -> int | None:
        return None if board.mode == UNKNOWN else board.mode

    def setwarnings(flag: bool) -> None:
        board.warnings = bool(flag)

    def setup(
        channel: int, direction: int, pull_up_down: int = PUD_OFF, initial: int | None = None
    ) -> None:
        need_mode()
        if direction == OUT:
            if pull_up_down != PUD_OFF:
                raise ValueError("pull_up_down parameter is not valid for outputs")
            old = board.channels.get(channel)
            level = int(bool(initial)) if initial is not None else (old.level if old else 0)
            board.channels[channel] = _Channel(OUT, level)
        elif direction == IN:
            if initial is not None:
                raise ValueError("initial parameter is not valid for inputs")
            pull = pull_up_down
            if pull not in (PUD_OFF, PUD_DOWN, PUD_UP):
                raise ValueError(
                    "Invalid value for pull_up_down - should be either PUD_OFF, PUD_UP or PUD_DOWN"
                )
            board.channels[channel] = _Channel(IN, 1 if pull == PUD_UP else 0, pull)
        else:
            raise ValueError("An invalid direction was passed to setup()")

    def input(channel: int) -> int:  # noqa: A001 - the module's own name
        return channel_of(channel).level

    def output(channel: int, value: int) -> None:
        ch = channel_of(channel)
        if ch.direction != OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        ch.level = int(bool(value))
        board.writes.append((channel, ch.level))

    def add_event_detect(
        channel: int,
        edge: int,
        callback: Callable[[int], Any] | None = None,
        bouncetime: int | None = None,
    ) -> None:
        ch = channel_of(channel)
        if ch.direction != IN:
            raise RuntimeError("You must setup() the GPIO channel as an input first")
        if edge not in (RISING, FALLING, BOTH):
            raise ValueError("The edge must be set to RISING, FALLING or BOTH")
        if bouncetime is not None and bouncetime <= 0:
            raise ValueError("Bouncetime must be greater than 0")
        if ch.edge is not None and (board.flavour == "RPi.GPIO" or ch.edge != edge):
            raise RuntimeError("Conflicting edge detection already enabled for this GPIO channel")
        ch.edge = edge
        if callback is not None:
            ch.callbacks.append(callback)

    def add_event_callback(channel: int, callback: Callable[[int], Any]) -> None:
        ch = channel_of(channel)
        if ch.edge is None:
            raise RuntimeError(
                "Add event detection using add_event_detect first before adding a callback"
            )
        ch.callbacks.append(callback)

    def remove_event_detect(channel: int) -> None:
        ch = channel_of(channel)
        ch.edge = None
        ch.callbacks = []

    def event_detected(channel: int) -> bool:
        ch = channel_of(channel)
        hit, ch.detected = ch.detected, False
        return hit

    def cleanup(chanlist: int | list[int] | tuple[int, ...] | None = None) -> None:
        if chanlist is None:
            chans = list(board.channels)
        elif isinstance(chanlist, int):
            chans = [chanlist]
        else:
            chans = list(chanlist)
        for c in chans:
            if board.channels.pop(c, None) is not None:
                board.cleaned.append(c)
        if chanlist is None:
            board.mode = UNKNOWN
        if not board.channels:
            board.stop()

    gpio = ModuleType("RPi.GPIO")
    for name, value in dict(
        BOARD=BOARD,
        BCM=BCM,
        OUT=OUT,
        IN=IN,
        LOW=LOW,
        HIGH=HIGH,
        PUD_OFF=PUD_OFF,
        PUD_DOWN=PUD_DOWN,
        PUD_UP=PUD_UP,
        RISING=RISING,
        FALLING=FALLING,
        BOTH=BOTH,
        VERSION="0.7.1",
        setmode=setmode,
        getmode=getmode,
        setwarnings=setwarnings,
        setup=setup,
        input=input,
        output=output,
        add_event_detect=add_event_detect,
        add_event_callback=add_event_callback,
        remove_event_detect=remove_event_detect,
        event_detected=event_detected,
        cleanup=cleanup,
    ).items():
        setattr(gpio, name, value)
    pkg = ModuleType("RPi")
    pkg.__path__ = []  # a package, so "import RPi.GPIO" resolves through sys.modules
    pkg.GPIO = gpio  # type: ignore[attr-defined]
    return {"RPi": pkg, "RPi.GPIO": gpio}
