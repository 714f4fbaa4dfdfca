"""Device events: what happened to a module or a meter, kept next to the counts.

Restarts, rejected lines, spikes, gaps, corrections and replacements are facts with a time, never
edits of history; the store keeps them and the dashboard lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["DeviceEvent", "EventKind"]


class EventKind(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    #: A start-up header: the module (re)started; its totals begin at 0.
    STARTUP = "startup"
    #: A restart seen only from the totals going back (its header was lost).
    RESTART = "restart"
    #: A line that was not accepted (value: none; detail: reason and raw line).
    REJECTED = "rejected"
    #: A delta the meter cannot physically produce in the time elapsed: quarantined, not counted.
    SPIKE = "spike"
    #: A corrupted record (it disagreed with the records around it): not counted, its pulses
    #: are in the next confirmed total.
    GLITCH = "glitch"
    #: The last record of a module life could not be confirmed: counted unchecked, or (when it
    #: disagreed with the records around it) left out with its interval reported unknown.
    UNCONFIRMED = "unconfirmed"
    #: Pulses in the interval field disagree with the difference of totals.
    MISMATCH = "mismatch"
    #: Pulses recovered from the module's total after a gap (logger down, port unplugged).
    GAP = "gap"
    #: The reading was set again (value: the new reading).
    CORRECTION = "correction"
    #: The physical meter was replaced (value: the new meter's reading).
    REPLACEMENT = "replacement"
    THRESHOLDS_SENT = "thresholds_sent"
    THRESHOLDS_CONFIRMED = "thresholds_confirmed"
    THRESHOLDS_REFUSED = "thresholds_refused"
    WATCHDOG = "watchdog"
    #: The wall clock stepped, or records waited for a wrong clock to come right.
    CLOCK = "clock"
    #: Storing failed (a full or failing disk), or works again.
    STORAGE = "storage"
    #: The MQTT outbox was full: its oldest events were dropped unsent (value: how many).
    OUTBOX = "outbox"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceEvent:
    #: Unix time.
    at: float
    kind: EventKind
    #: Module name.
    module: str
    #: Meter key when the event concerns one meter.
    meter: str | None = None
    #: A number that goes with the event (pulses recovered, spike size, new reading).
    value: float | None = None
    detail: str = ""
    #: The module's register (1-based) an event of the ledger concerns: the ledger knows
    #: registers, not meters; the module runner names the meter (``meter``) and clears this,
    #: so what is stored and published carries the meter key alone, as it always did.
    register: int | None = None
