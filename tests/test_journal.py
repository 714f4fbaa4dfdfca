"""The crash journal (``s0pcm.logger.journal``), in-process on real files: what it gives back,
what it skips, emptying it, and its one writer. Fast; tests/test_disk.py fills real disks under
it and tests/test_one_logger.py has two loggers meet on it."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from s0pcm.errors import AlreadyRunning
from s0pcm.link.events import Connected, Disconnected
from s0pcm.logger.journal import Entry, Journal
from s0pcm.protocol import Rejected, parse_line

TELEGRAM = "ID:8237:I:10:M1:1:5:M2:0:0"
HEADER = "/8237:S0 Pulse Counter V0.6 - 30/30/30/30/30ms"


def telegram(seq: int, total: int | None = None) -> Entry:
    """Entry ``seq``: a record of module ``kast`` whose M1 total is ``total`` (default: seq)."""
    line = f"ID:8237:I:10:M1:1:{seq if total is None else total}:M2:0:0"
    return Entry(seq=seq, module="kast", at=1000.0 + seq, record=parse_line(line))


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = Journal(tmp_path / "s0pcm.journal")
    yield opened
    opened.close()


def seqs(journal: Journal, after: int = 0) -> list[int]:
    return [e.seq for e in journal.entries(after=after)]


def test_every_kind_of_entry_comes_back_as_it_went_in(journal: Journal) -> None:
    written = [
        Entry(seq=1, module="kast", at=10.0, record=Connected(at=10.0, port="/dev/ttyACM0")),
        Entry(seq=2, module="kast", at=11.5, record=parse_line(HEADER)),
        Entry(seq=3, module="kast", at=21.5, record=parse_line(TELEGRAM)),
        Entry(
            seq=4,
            module="kast",
            at=22.0,
            record=Rejected(raw="ID:8237:I:1#:M1", reason="bad interval"),
        ),
        Entry(
            seq=5,
            module="schuur",
            at=23.0,
            record=Disconnected(at=23.0, port="/dev/ttyACM1", reason="unplugged"),
        ),
    ]
    for entry in written:
        journal.append(entry)
    assert list(journal.entries()) == written
    lines = journal.path.read_text().splitlines()
    assert len(lines) == len(written)  # one line per entry
    assert json.loads(lines[2]) == {"s": 3, "m": "kast", "t": 21.5, "l": TELEGRAM}


def test_after_gives_only_the_later_entries(journal: Journal) -> None:
    for seq in range(1, 6):
        journal.append(telegram(seq))
    assert seqs(journal) == [1, 2, 3, 4, 5]
    assert seqs(journal, after=0) == [1, 2, 3, 4, 5]
    assert seqs(journal, after=2) == [3, 4, 5]
    assert seqs(journal, after=4) == [5]
    assert seqs(journal, after=5) == []
    assert seqs(journal, after=99) == []


def test_after_compares_sequence_numbers_not_positions(journal: Journal) -> None:
    """``after`` is by ``seq``, wherever the entry stands in the file."""
    for seq in (7, 3, 9, 4):
        journal.append(telegram(seq))
    assert seqs(journal, after=4) == [7, 9]


def test_a_torn_last_line_is_skipped_with_a_warning(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    for seq in (1, 2, 3):
        journal.append(telegram(seq))
    whole = journal.path.read_bytes()
    journal.path.write_bytes(whole[: whole.rindex(b"\n", 0, -1) + 12])  # the third, cut short
    with caplog.at_level(logging.WARNING, logger="s0pcm.logger.journal"):
        entries = list(journal.entries())
    assert [e.seq for e in entries] == [1, 2]
    assert entries == [telegram(1), telegram(2)]  # the ones before are whole
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{journal.path}:3: skipping unreadable journal entry")


def test_the_entry_after_a_torn_last_line_is_whole(tmp_path: Path) -> None:
    path = tmp_path / "s0pcm.journal"
    first = Journal(path)
    for seq in (1, 2):
        first.append(telegram(seq))
    first.close()
    path.write_bytes(path.read_bytes()[:-10])  # the process died while entry 2 went out
    again = Journal(path)
    try:
        again.append(telegram(3))
        assert seqs(again) == [1, 3]
    finally:
        again.close()


def test_a_short_write_is_cut_off_and_the_next_entry_is_whole(tmp_path: Path) -> None:
    """A write the kernel cuts short (here: the file size limit, as a full disk would) leaves no
    torn line: the entry is not journalled, the journal says why, and the next one is whole."""
    path = tmp_path / "s0pcm.journal"
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        from pathlib import Path
        from s0pcm.logger.journal import Entry, Journal
        from s0pcm.protocol import parse_line

        def entry(seq):
            return Entry(seq=seq, module="kast", at=1000.0 + seq, record=parse_line({TELEGRAM!r}))

        journal = Journal(Path({str(path)!r}))
        journal.append(entry(1))
        first = journal.path.stat().st_size
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (first + 20, hard))
        journal.append(entry(2))  # only 20 of its bytes fit
        problem = journal.problem
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        size_after_failure = journal.path.stat().st_size
        journal.append(entry(3))
        print(json.dumps({{"problem": problem, "first": first, "after": size_after_failure,
                           "cleared": journal.problem, "recovered": journal.recovered}}))
        journal.close()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["problem"] is not None  # it said why
    assert result["after"] == result["first"]  # the torn part was cut off again
    assert result["cleared"] is None
    assert result["recovered"] is True  # the logger commits what only memory holds
    reader = Journal(path, readonly=True)
    assert seqs(reader) == [1, 3]
    assert path.read_bytes().endswith(b"\n")


@pytest.mark.parametrize(
    "line",
    [
        "not json at all",
        "",
        "null",
        "[1, 2]",
        '"a string"',
        '{"m": "kast", "t": 1.0, "l": "ID:8237:I:10:M1:1:5:M2:0:0"}',  # no seq
        '{"s": "two", "m": "kast", "t": 1.0, "l": "ID:8237:I:10:M1:1:5:M2:0:0"}',
        '{"s": 2, "m": "kast", "l": "ID:8237:I:10:M1:1:5:M2:0:0"}',  # no time
        '{"s": 2, "m": "kast", "t": "noon", "l": "ID:8237:I:10:M1:1:5:M2:0:0"}',
        '{"s": 2, "t": 1.0, "l": "ID:8237:I:10:M1:1:5:M2:0:0"}',  # no module
        '{"s": 2, "m": "kast", "t": 1.0}',  # no record
        '{"s": 2, "m": "kast", "t": 1.0, "l": "ID:8237:I:ten:M1:1:5:M2:0:0"}',  # not a record
        '{"s": 2, "m": "kast", "t": 1.0, "r": "ID:8237"}',  # a rejected line without a reason
        '{"s": 2, "m": "kast", "t": 1.0, "down": "/dev/ttyACM0"}',  # a drop without a reason
    ],
)
def test_an_unreadable_line_is_skipped_with_a_warning_and_the_rest_read(
    journal: Journal, line: str, caplog: pytest.LogCaptureFixture
) -> None:
    journal.append(telegram(1))
    with journal.path.open("a") as f:
        f.write(line + "\n")
    journal.append(telegram(3))
    with caplog.at_level(logging.WARNING, logger="s0pcm.logger.journal"):
        assert list(journal.entries()) == [telegram(1), telegram(3)]
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        f"{journal.path}:2: skipping unreadable journal entry"
    ]


def test_the_same_lines_whole_are_read(journal: Journal) -> None:
    """The lines above, with nothing missing: read (so each one above fails for its own fault)."""
    with journal.path.open("a") as f:
        f.write(f'{{"s": 2, "m": "kast", "t": 1.0, "l": "{TELEGRAM}"}}\n')
        f.write('{"s": 3, "m": "kast", "t": 1.0, "r": "ID:8237", "why": "short"}\n')
        f.write('{"s": 4, "m": "kast", "t": 1.0, "down": "/dev/ttyACM0", "why": "gone"}\n')
    assert list(journal.entries()) == [
        Entry(seq=2, module="kast", at=1.0, record=parse_line(TELEGRAM)),
        Entry(seq=3, module="kast", at=1.0, record=Rejected(raw="ID:8237", reason="short")),
        Entry(
            seq=4,
            module="kast",
            at=1.0,
            record=Disconnected(at=1.0, port="/dev/ttyACM0", reason="gone"),
        ),
    ]


def test_lines_at_or_before_after_are_not_read_further(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    """A line whose ``seq`` is done is passed over whatever else it holds: no warning."""
    with journal.path.open("a") as f:
        f.write('{"s": 1, "m": "kast", "t": "whenever", "l": "garbage"}\n')
    journal.append(telegram(2))
    with caplog.at_level(logging.WARNING, logger="s0pcm.logger.journal"):
        assert seqs(journal, after=1) == [2]
    assert caplog.records == []


def test_clear_empties_the_journal_and_it_fills_again(journal: Journal) -> None:
    for seq in (1, 2, 3):
        journal.append(telegram(seq))
    journal.clear()
    assert journal.path.read_bytes() == b""
    assert seqs(journal) == []
    journal.append(telegram(4))
    assert seqs(journal) == [4]
    assert journal.path.read_text().count("\n") == 1


def test_what_is_appended_outlives_the_process_and_a_new_writer_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "s0pcm.journal"
    first = Journal(path)
    first.append(telegram(1))
    first.append(telegram(2))
    first.close()
    second = Journal(path)
    try:
        assert seqs(second) == [1, 2]
        second.append(telegram(3))  # appended, not written over
        assert seqs(second) == [1, 2, 3]
    finally:
        second.close()
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_second_writer_is_refused_and_a_reader_reads_beside_the_writer(
    journal: Journal,
) -> None:
    journal.append(telegram(1))
    with pytest.raises(AlreadyRunning) as refused:
        Journal(journal.path)
    assert refused.value.what == f"journal {journal.path}"
    assert refused.value.holder == journal.running()
    reader = Journal(journal.path, readonly=True)
    assert reader.running() == journal.running()
    assert seqs(reader) == [1]
    reader.close()  # a reader holds no lock: closing it frees nothing
    with pytest.raises(AlreadyRunning):
        Journal(journal.path)
    journal.append(telegram(2))  # the writer writes on
    assert seqs(reader) == [1, 2]


def test_the_lock_is_released_on_close(tmp_path: Path) -> None:
    path = tmp_path / "s0pcm.journal"
    first = Journal(path)
    assert (first.running() or "").startswith(f"pid {os.getpid()} on ")
    first.close()
    assert Journal(path, readonly=True).running() is None
    second = Journal(path)  # free again
    assert second.running() is not None
    second.close()


def test_a_reader_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "s0pcm.journal"
    reader = Journal(path, readonly=True)
    assert list(reader.entries()) == []
    assert reader.running() is None
    reader.close()
    assert not (tmp_path / "deeper").exists()


def test_a_writer_makes_the_directory(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "s0pcm.journal"
    writer = Journal(path)
    writer.append(telegram(1))
    writer.close()
    assert seqs(Journal(path, readonly=True)) == [1]
