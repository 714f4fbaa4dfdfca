"""Take over the totals of the S0PCM readers people run today.

Those readers keep one running total of pulses per register in a small YAML file,
``measurement.yaml``, rewritten after every change. This module reads it, so that a user who
switches keeps counting from where the old reader stood. What the file looks like was learned from
the readers' own source (read, not copied):

* **ualex73/docker-s0pcm-reader** -- ``app/s0pcm-reader.py`` (``ReadMeasurement`` loads the file
  with ``yaml.safe_load``; ``TaskReadSerial.ReadSerial`` updates it and writes it back with
  ``yaml.dump(measurement, f, default_flow_style=False)``), and ``README.md`` ("Configure your
  initial meter reader": users edit ``total`` by hand). A file as it writes it::

      date: 2026-11-01
      1:
        pulsecount: 24130
        today: 4321
        total: 12054321
        yesterday: 9876

  Registers are YAML *integer* keys ``1``..``5``, each a mapping of ``pulsecount`` (the module's
  since-start-up counter last seen, used to compute the next delta), ``total`` (the running
  total: pulses, starting from whatever the user typed in), ``today`` and ``yesterday``
  (pulses); ``date`` is the file-level day ``today`` belongs to (a YAML date, ``%Y-%m-%d``).
  Users may add ``name`` (used in the MQTT topic) and ``enabled: false`` per register; it
  keeps them. Dumping mixed int and str keys cannot sort them, so the keys stay in insertion
  order: ``date`` first in a file it created, wherever the user put it otherwise.

* **darkrain-nl/home-assistant-addon-s0pcm-reader** (a fork, a Home Assistant add-on) --
  up to 1.5.x ``rootfs/usr/src/s0pcm-reader.py`` has the same ``ReadMeasurement`` and writer, so
  the same YAML (in ``/share/s0pcm/measurement.yaml``); its MQTT ``total/set`` command writes
  ``total`` as an ``int``. From 2.0.0 it kept the same structure as JSON in
  ``/data/measurement.json`` (``DOCS.md``, "Measurement Configuration"), where the register keys
  are *strings* (``"1"``) and ``date`` a string ``"2026-01-08"``; from 2.1.0 (``CHANGELOG.md``)
  it keeps no file at all (its state lives in retained MQTT messages). JSON is YAML, so the
  2.0 file is read as well.

* **hansij66/S0PCM2MQTT** -- ``S0_parser.py`` writes the same shape with only ``total`` per
  register and ``date`` as a Unix timestamp of the last write (``int(time.time())``; 0 before
  the first one). Read too, since it is the same file name and users move between them.

A register's ``total`` is what to take over: the pulses the old reader counted for it, including
any baseline the user typed in (which the readers' README asks to be in pulses, e.g. litres for
a 1 imp/L water meter, not m³). Every problem raises :class:`~s0pcm.errors.LegacyFileError` with the
file, the key (``1.total``, ``date``) and the line.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from typing import Any, Final

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from ..config import read_text
from ..errors import LegacyFileError

__all__ = [
    "LegacyTotal",
    "parse_measurement_yaml",
    "read_measurement_yaml",
]

#: Registers of the largest module (S0PCM-5).
MAX_REGISTER: Final = 5
_COUNTERS: Final = ("total", "pulsecount", "today", "yesterday")
_DIGITS: Final = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True, slots=True)
class LegacyTotal:
    """One register's entry of a ``measurement.yaml``."""

    register: int
    #: The running total in pulses, as the old reader counts it (0 when the entry has none).
    total: int
    #: The module's since-start-up counter the old reader saw last; None when not written.
    pulsecount: int | None = None
    #: Pulses counted on ``date`` and on the day before it; None when not written.
    today: int | None = None
    yesterday: int | None = None
    #: The day ``today`` counts (ualex73 and darkrain); None when the file has none.
    date: dt.date | None = None
    #: Unix time of the file's last write, when the file says (hansij66); else None.
    updated_at: float | None = None
    #: The name the user gave the register, if any.
    name: str | None = None
    #: False when the user disabled the register; None when not written (the readers' default
    #: is enabled).
    enabled: bool | None = None
    #: Line of the register's entry in the file.
    line: int | None = None


def read_measurement_yaml(path: str | os.PathLike[str]) -> list[LegacyTotal]:
    """The registers of a ``measurement.yaml`` (or darkrain's ``measurement.json``), by register."""
    name, text = read_text(path, what="measurement file", error=LegacyFileError)
    return parse_measurement_yaml(text, path=name)


def parse_measurement_yaml(text: str, *, path: str = "<string>") -> list[LegacyTotal]:
    """Like :func:`read_measurement_yaml`, from text; ``path`` names it in errors."""
    return _Reader(text, path).totals()


# --- reading -------------------------------------------------------------------------------------


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _shown(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


class _Reader:
    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.loader = yaml.SafeLoader(text)

    def error(self, message: str, key: str | None, node: Node | None) -> LegacyFileError:
        line = None if node is None else _line(node)
        return LegacyFileError(message, file=self.file, key=key, line=line)

    def value(self, node: Node) -> Any:
        return self.loader.construct_object(node, deep=True)

    def totals(self) -> list[LegacyTotal]:
        try:
            return self.document(self.loader.get_single_node())
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            problem = e.problem or e.context or "not valid YAML"
            line = None if mark is None else mark.line + 1
            raise LegacyFileError(f"YAML error: {problem}", file=self.file, line=line) from None
        except yaml.YAMLError as e:
            raise LegacyFileError(f"YAML error: {e}", file=self.file) from None
        finally:
            self.loader.dispose()

    def document(self, root: Node | None) -> list[LegacyTotal]:
        if root is None or (isinstance(root, ScalarNode) and self.value(root) is None):
            raise self.error("the measurement file is empty", None, root)
        if not isinstance(root, MappingNode):
            raise self.error(
                "must be a mapping of registers (1: {total: ...}) and date", None, root
            )

        day: dt.date | None = None
        updated_at: float | None = None
        entries: dict[int, tuple[Node, Node]] = {}
        for key_node, value_node in root.value:
            key = self.value(key_node)
            if key == "date":
                day, updated_at = self.day(value_node)
                continue
            register = self.register(key, key_node)
            if register is None:
                continue  # a key the readers do not use either
            if register in entries:
                first = _line(entries[register][0])
                raise self.error(
                    f"register {register} appears twice (first on line {first})",
                    str(register),
                    key_node,
                )
            entries[register] = (key_node, value_node)
        return [
            self.entry(register, key_node, value_node, day, updated_at)
            for register, (key_node, value_node) in sorted(entries.items())
        ]

    def register(self, key: object, node: Node) -> int | None:
        """The register a top-level key stands for; None for a key that is not one."""
        if isinstance(key, bool):
            return None
        if isinstance(key, int):
            number = key
        elif isinstance(key, str) and _DIGITS.fullmatch(key.strip()):
            number = int(key)
        else:
            return None
        if not 1 <= number <= MAX_REGISTER:
            raise self.error(
                f"register {number} does not exist (the S0PCM has registers 1..{MAX_REGISTER})",
                str(key),
                node,
            )
        return number

    def day(self, node: Node) -> tuple[dt.date | None, float | None]:
        value = self.value(node)
        if value is None:
            return None, None
        if isinstance(value, dt.datetime):
            return value.date(), None
        if isinstance(value, dt.date):
            return value, None
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            # hansij66: the Unix time of the last write; 0 = never written.
            if value == 0:
                return None, None
            return dt.datetime.fromtimestamp(value, dt.UTC).date(), float(value)
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip()), None
            except ValueError:
                pass
        raise self.error(f"must be a date like 2026-11-01, got {_shown(value)}", "date", node)

    def entry(
        self,
        register: int,
        key_node: Node,
        node: Node,
        day: dt.date | None,
        updated_at: float | None,
    ) -> LegacyTotal:
        where = str(register)
        if not isinstance(node, MappingNode):
            raise self.error(
                f"register {register} must be a mapping with its total "
                f"(e.g. {register}: {{total: 12345}}), got {_shown(self.value(node))}",
                where,
                node if isinstance(node, ScalarNode) and node.value else key_node,
            )
        counters: dict[str, int] = {}
        name: str | None = None
        enabled: bool | None = None
        seen: dict[str, int] = {}
        for field_node, value_node in node.value:
            field = self.value(field_node)
            key = f"{where}.{field}"
            if isinstance(field, str) and field in seen:
                raise self.error(
                    f"{field} appears twice in register {register} (first on line {seen[field]})",
                    key,
                    field_node,
                )
            if isinstance(field, str):
                seen[field] = _line(field_node)
            value = self.value(value_node)
            if field in _COUNTERS:
                counters[field] = self.count(value, key, value_node)
            elif field == "name":
                if value is not None and not isinstance(value, str | int):
                    raise self.error(f"must be a name, got {_shown(value)}", key, value_node)
                name = None if value is None else str(value)
            elif field == "enabled":
                if value is not None and not isinstance(value, bool):
                    raise self.error(f"must be true or false, got {_shown(value)}", key, value_node)
                enabled = value
            # Anything else is not the readers' either; ignore it as they do.
        return LegacyTotal(
            register=register,
            total=counters.get("total", 0),
            pulsecount=counters.get("pulsecount"),
            today=counters.get("today"),
            yesterday=counters.get("yesterday"),
            date=day,
            updated_at=updated_at,
            name=name,
            enabled=enabled,
            line=_line(key_node),
        )

    def count(self, value: object, key: str, node: Node) -> int:
        """A pulse count: a whole number >= 0 (``12.0`` and ``"12"`` are taken as 12)."""
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
            number = int(value)  # quoted by hand
        elif isinstance(value, float) and value.is_integer():
            number = round(value)  # 12345.0
        elif isinstance(value, float):
            raise self.error(
                f"must be a whole number of pulses, got {value!r}: the readers count pulses, "
                "so a total in m³ or kWh must be converted (e.g. 770.123 m³ at 1 imp/L is "
                "770123)",
                key,
                node,
            )
        if number is None or number < 0:
            raise self.error(
                f"must be a whole number of pulses >= 0, got {_shown(value)}", key, node
            )
        return number
