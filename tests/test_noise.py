"""The log of rejected lines stays small however noisy the port, and says when the device on it is
not an S0PCM."""

from __future__ import annotations

from s0pcm.link.noise import SHOWN, NoiseLog, guess_device
from s0pcm.protocol import Decoder

# A P1 telegram (DSMR 5) as a smart meter prints it: what a user gets with the wrong USB device.
P1 = b"""/ISK5\\2M550T-1012\r
\r
1-3:0.2.8(50)\r
0-0:1.0.0(261201103000W)\r
1-0:1.8.1(001234.567*kWh)\r
1-0:1.8.2(002345.678*kWh)\r
1-0:1.7.0(00.452*kW)\r
!6A3F\r
"""


def feed(log: NoiseLog, decoder: Decoder, data: bytes, now: float) -> list[str]:
    out: list[str] = []
    for record in decoder.feed(data):
        reason = getattr(record, "reason", None)
        if reason is None:
            out += log.valid(now)
        else:
            out += log.rejected(now, reason, record.raw)  # type: ignore[union-attr]
    return out


def test_a_day_of_garbage_is_a_few_kilobytes() -> None:
    """Ten bad lines a second for 24 hours (864,000 lines): the first few whole, then sums, less
    and less often. Measured: 34 lines, 3.7 kB with time stamps (was 864,000 lines)."""
    log = NoiseLog()
    out: list[str] = []
    for n in range(864_000):
        out += log.rejected(n / 10, "expected 10 or 19 fields (S0PCM-2 or S0PCM-5), got 7",
                            "ID:1:I:10:garbage")  # fmt: skip
    size = sum(len(line) + 40 for line in out)  # with the logger's time stamp and name
    assert out[:SHOWN] == [
        *[
            "rejected line: expected 10 or 19 fields (S0PCM-2 or S0PCM-5), got 7: "
            "'ID:1:I:10:garbage'"
        ]
        * (SHOWN - 1),
        "rejected line: expected 10 or 19 fields (S0PCM-2 or S0PCM-5), got 7: "
        "'ID:1:I:10:garbage' (more are summed up)",
    ]
    assert out[SHOWN] == "rejected 600 lines in 1 min: 600x expected 10 or 19 fields"
    assert len(out) < 40
    assert size < 6000


def test_sparse_rejects_are_all_shown_and_a_quiet_spell_starts_over() -> None:
    log = NoiseLog()
    log.opened(0.0)
    shown = []
    for t in range(0, 600, 100):
        shown += log.rejected(t, "bad", "x")
        log.valid(t + 1)  # the module's own records in between
    assert len(shown) == 6  # one every 100 s: never more than a few per window, all shown whole
    log.valid(999)
    burst = [line for n in range(100) for line in log.rejected(1000 + n / 100, "bad", "x")]
    assert len(burst) == SHOWN
    later = log.rejected(1200, "bad", "x")  # the burst's window ended, and it hid lines
    assert later[0] == "rejected 100 lines in 1 min: 100x bad"
    quiet = log.rejected(5000, "bad", "x")  # a quiet hour: whole lines again
    assert quiet == ["rejected line: bad: 'x'"]


def test_a_p1_meter_on_the_port_is_named() -> None:
    log = NoiseLog()
    decoder = Decoder()
    log.opened(0.0)
    out: list[str] = []
    for second in range(0, 300):
        out += feed(log, decoder, P1, float(second))
    warnings = [line for line in out if line.startswith("nothing valid")]
    assert warnings == [
        "nothing valid from this port for 2 minutes: is it an S0PCM? "
        "it looks like a smart meter's P1 port (DSMR), not an S0PCM"
    ]
    assert len(out) < 20


def test_guesses() -> None:
    assert "GPS" in guess_device(["$GPGGA,123519,4807.038,N"])
    assert "modem" in guess_device(["OK"])
    assert "unprintable" in guess_device(["\x01\x02\x7f\x03abc\x04\x05\x06\x07"])
    assert "cable" in guess_device(["ID:8237:I:10:M1:0:0:M2:0:0:M3x"])
    assert guess_device([]) == "it sends no whole lines"
