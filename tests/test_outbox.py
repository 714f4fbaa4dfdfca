"""The MQTT outbox on a real SQLite file: order, retained topics collapsing to their newest
value, events kept whole, the overflow policy, and nothing lost across a reopen."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from s0pcm.config import parse_config
from s0pcm.publish import Message
from s0pcm.publish.outbox import Outbox, outbox_path


def event(n: int) -> Message:
    return Message(topic="s0pcm/8237/events", payload=b"%d" % n, retain=False)


def state(register: int, n: int) -> Message:
    return Message(topic=f"s0pcm/8237/{register}/state", payload=b"%d" % n, retain=True)


def waiting(box: Outbox) -> list[tuple[str, bytes]]:
    return [(e.message.topic, e.message.payload) for e in box.peek(10_000)]


def test_in_order_retained_collapse_to_the_newest(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.outbox", limit=1000)
    box.put([event(0), state(1, 0), state(2, 0)])
    box.put([event(1), state(1, 1)])
    box.put([event(2), state(1, 2)])
    # Every event in order; register 1 only its newest value, which moved after the events
    # that came before it; register 2 untouched.
    assert waiting(box) == [
        ("s0pcm/8237/events", b"0"),
        ("s0pcm/8237/2/state", b"0"),
        ("s0pcm/8237/events", b"1"),
        ("s0pcm/8237/events", b"2"),
        ("s0pcm/8237/1/state", b"2"),
    ]
    assert len(box) == 5
    entries = box.peek(2)
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    assert entries[0].message == event(0)
    box.ack(entries[0].seq)
    assert len(box) == 4
    assert waiting(box)[0] == ("s0pcm/8237/2/state", b"0")


def test_an_ack_of_a_replaced_message_keeps_its_successor(tmp_path: Path) -> None:
    """The sender acknowledges the value it sent; a newer one queued meanwhile stays (a
    sequence number is never used twice, even after the highest was removed)."""
    box = Outbox(tmp_path / "o.outbox", limit=1000)
    box.put([state(1, 0)])
    (sent,) = box.peek()
    box.put([state(1, 1)])  # replaces it while it is in flight
    box.ack(sent.seq)
    assert waiting(box) == [("s0pcm/8237/1/state", b"1")]
    (newer,) = box.peek()
    box.ack(newer.seq)
    box.put([state(1, 2)])
    (third,) = box.peek()
    assert third.seq > newer.seq > sent.seq
    assert len(box) == 1


def test_nothing_is_lost_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.outbox"
    box = Outbox(path, limit=1000)
    box.put([event(n) for n in range(50)] + [state(1, 7)])
    (first,) = box.peek(1)
    box.ack(first.seq)
    before = waiting(box)
    box.sync()  # the logger's commit
    del box  # no close: as a killed logger leaves it
    again = Outbox(path, limit=1000)
    assert waiting(again) == before
    assert len(again) == 50
    again.put([state(1, 8)])
    assert waiting(again)[-1] == ("s0pcm/8237/1/state", b"8")
    assert len(again) == 50


def size(path: Path) -> int:
    """Bytes of the file and its write-ahead log."""
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def test_the_disk_is_written_at_a_sync_and_only_with_what_changed(tmp_path: Path) -> None:
    """Puts and acks touch memory only; a sync writes the difference in one transaction, and
    nothing at all when the sender kept up (an SD card is not written once a record)."""
    path = tmp_path / "o.outbox"
    box = Outbox(path, limit=1000)
    empty = size(path)
    for n in range(100):  # a hundred records, each sent and acknowledged
        box.put([event(n), state(1, n), state(2, n)])
        for entry in box.peek():
            box.ack(entry.seq)
    assert size(path) == empty
    assert box.sync() == 0
    assert size(path) == empty
    box.put([event(100), state(1, 100)])
    assert box.sync() == 2
    (e,) = [x for x in box.peek() if not x.message.retain]
    box.ack(e.seq)
    box.put([state(1, 101)])  # replaces the state on disk
    assert box.sync() == 3  # the event and the old state gone, the new state in
    assert waiting(Outbox(path, limit=1000)) == [("s0pcm/8237/1/state", b"101")]
    box.close()


def test_what_was_queued_after_the_last_sync_is_not_in_the_file(tmp_path: Path) -> None:
    """The journal's records after the commit make those messages again (see the daemon's
    test): the file holds what the commit covered, no more."""
    path = tmp_path / "o.outbox"
    box = Outbox(path, limit=1000)
    box.put([event(1)])
    box.sync()
    box.put([event(2)])
    del box  # killed
    assert waiting(Outbox(path, limit=1000)) == [("s0pcm/8237/events", b"1")]


def test_overflow_drops_the_oldest_events_and_counts(tmp_path: Path) -> None:
    path = tmp_path / "o.outbox"
    box = Outbox(path, limit=100)
    assert box.put([state(r, 0) for r in (1, 2, 3)]) == 0
    assert box.put([event(n) for n in range(97)]) == 0
    assert len(box) == 100
    assert box.put([event(97), event(98), state(1, 1)]) == 2  # the newest state replaced its old
    assert len(box) == 100
    assert box.dropped == 2
    left = waiting(box)
    events = [int(p) for t, p in left if t.endswith("events")]
    assert events == list(range(2, 99))  # the two oldest went
    states = {t: p for t, p in left if t.endswith("state")}
    assert states == {f"s0pcm/8237/{r}/state": b"1" if r == 1 else b"0" for r in (1, 2, 3)}
    box.close()
    assert Outbox(path, limit=100).dropped == 2  # the count is kept in the file


def test_retained_messages_are_never_dropped(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.outbox", limit=100)
    box.put([state(r, 0) for r in range(1, 121)])
    assert len(box) == 120  # one per topic: the bound counts events only past this
    assert box.dropped == 0


def test_the_file_is_the_owners_alone(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "o.outbox"
        box = Outbox(path, limit=100)
        box.put([event(1)])
    finally:
        os.umask(old)
    for file in (path, path.with_name(path.name + "-wal")):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    path.chmod(0o644)  # loosened by hand: tightened on the next open
    box.close()
    Outbox(path, limit=100).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_file_that_is_not_an_outbox_is_moved_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "o.outbox"
    path.write_bytes(b"not a database, " * 512)
    box = Outbox(path, limit=100)
    box.put([event(1)])
    assert len(box) == 1
    (aside,) = tmp_path.glob("o.outbox.broken-*")
    assert aside.read_bytes().startswith(b"not a database")
    assert "unreadable" in caplog.text


def test_next_to_the_database_or_the_journal(tmp_path: Path) -> None:
    modules = "[modules.m]\nmodel = 2\n[modules.m.meters.1]\nkind = 'water'\npulses_per_unit = 1\n"
    sqlite = parse_config(f"[logger]\ndatabase = '{tmp_path}/s0pcm.sqlite'\n" + modules)
    assert outbox_path(sqlite.logger) == tmp_path / "s0pcm.outbox"
    pg = parse_config(
        "[logger]\ndatabase = 'postgresql://s0pcm@localhost/s0pcm'\n"
        f"journal = '{tmp_path}/x/s0pcm.journal'\n" + modules
    )
    assert outbox_path(pg.logger) == tmp_path / "x" / "s0pcm.outbox"
