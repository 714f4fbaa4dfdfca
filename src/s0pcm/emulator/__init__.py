"""A virtual S0PCM-2 / S0PCM-5: our hardware, faults included, with its own ground truth.

The module is never available to us or to CI, so the emulator must behave like the real one and
say exactly what a perfect logger should have counted.

Two layers, like the rest of the package:

* :class:`Module` is the module itself, sans-io and driven by explicit time: it counts pulses from
  its sources, prints a header at start-up and a data record every interval, listens for threshold
  commands in the first seconds after power-up, and suffers faults. Tests drive it with a fake
  clock and feed its bytes straight to a decoder.
* :class:`PtyEmulator` runs a module in real time on a pseudo-terminal behind a stable symlink,
  so the real link code (pyserial) reads it. It makes the pty vanish on an unplug and tracks which
  bytes a reader actually consumed, so the ground truth counts only what reached a reader.

The ground truth (:class:`Truth`) keeps, per register, the pulses the meter *generated*, the
pulses the module *counted*, and the pulses it *reported*: for each module life (start-up to
restart) the highest total that reached a reader intact. A perfect logger counts exactly
*reported*; pulses counted after the last delivered record of a life are lost for everyone.

Where each part lives: :mod:`.module` (the module, its printing and its faults), :mod:`.truth`
(what a perfect logger must count), :mod:`.profiles` (what is wired to the registers),
:mod:`.pty` (real time on a pseudo-terminal).
"""

from __future__ import annotations

from .module import DEFAULT_THRESHOLD_MS, LISTEN_WINDOW, Fault, Module
from .profiles import DEFAULT_PULSE_MS, HOUSEHOLD, RateFn, Source, household, steady
from .pty import SETTLE_IN, PtyEmulator
from .truth import Line, RegisterTruth, Truth

__all__ = [
    "DEFAULT_PULSE_MS",
    "DEFAULT_THRESHOLD_MS",
    "HOUSEHOLD",
    "LISTEN_WINDOW",
    "SETTLE_IN",
    "Fault",
    "Line",
    "Module",
    "PtyEmulator",
    "RateFn",
    "RegisterTruth",
    "Source",
    "Truth",
    "household",
    "steady",
]
