"""Line-by-line agreement between what the emulator delivered and what a reader accepted."""

from __future__ import annotations

from collections.abc import Sequence

from s0pcm.emulator import Line
from s0pcm.protocol import Header, Rejected, Telegram

_MASK = bytes(b & 0x7F for b in range(256))


def pieces(line: Line) -> list[str]:
    """The text lines in a printed line, as a 7-bit reader sees them."""
    text = line.data.translate(_MASK).decode("ascii").replace("\r", "\n")
    return [p for p in text.split("\n") if p]


def assert_agree(
    transcript: Sequence[Line], received: Sequence[Header | Telegram | Rejected]
) -> None:
    """Every intact line reached the reader, in order, with the same values; whatever else the
    reader accepted came out of a corrupted line (a cut that still parses), never from nowhere."""
    intact = [pieces(line)[-1] for line in transcript if not line.corrupt]
    accepted = [r.to_line() for r in received if not isinstance(r, Rejected)]
    corrupt = "\n".join(p for line in transcript if line.corrupt for p in pieces(line))
    pos = 0
    for text in accepted:
        if pos < len(intact) and text == intact[pos]:
            pos += 1
        else:
            assert text in corrupt, f"accepted {text!r}, which no corrupted line printed"
    assert pos == len(intact), f"intact line never accepted: {intact[pos]!r}"
