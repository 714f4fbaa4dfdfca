"""The ``s0pcm`` command, run as users run it: real processes on a real pseudo-terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from s0pcm.cli import main

S0PCM = [sys.executable, "-m", "s0pcm"]


@contextmanager
def emulator(*args: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([*S0PCM, "emulate", *args], text=True, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _commands() -> list[str]:
    """Every command, and every command of a group ("token new")."""
    names = []
    for name, command in sorted(main.commands.items()):
        names.append(name)
        if isinstance(command, click.Group):
            names += [f"{name} {sub}" for sub in sorted(command.commands)]
    return names


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help_with_an_example(name: str) -> None:
    result = CliRunner().invoke(main, [*name.split(), "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output
    assert f"s0pcm {name}" in result.output
    command: click.Command = main
    for part in name.split():
        assert isinstance(command, click.Group)
        command = command.commands[part]
    for param in command.params:
        if isinstance(param, click.Option) and param.name != "help":
            assert param.help, f"s0pcm {name} {param.opts[0]} has no help"


def test_read_json_shows_header_and_telegrams_from_the_emulator(tmp_path: Path) -> None:
    port = tmp_path / "s0"
    with emulator("--link", str(port), "--interval", "0.2", "--rate", "1=20"):
        wait_for(port)
        out = subprocess.run(
            [*S0PCM, "read", str(port), "--json", "--count", "4"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds == ["connected", "header", "telegram", "telegram", "telegram"]
    header, telegram = events[1], events[2]
    assert header["module_id"] == "8237"
    assert header["firmware"] == "V0.6"
    assert header["thresholds"] == [30, 30, 30, 30, 30]
    assert telegram["module_id"] == "8237"
    assert [r["register"] for r in telegram["registers"]] == [1, 2, 3, 4, 5]
    assert telegram["registers"][0]["total"] >= telegram["registers"][0]["interval"] > 0


def test_read_prints_readable_lines_for_an_s0pcm2(tmp_path: Path) -> None:
    port = tmp_path / "s0"
    with emulator("--link", str(port), "--interval", "0.2", "--model", "2", "--header-space"):
        wait_for(port)
        out = subprocess.run(
            [*S0PCM, "read", str(port), "--count", "2", "--framing", "8N1"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    lines = out.splitlines()
    assert "connected" in lines[0]
    assert "header    module 8237: S0 Pulse Counter V0.6 - 30/30ms" in lines[1]
    assert "telegram  module 8237" in lines[2]
    assert "M2" in lines[2]
    assert "M3" not in lines[2]


def test_set_thresholds_against_a_restarting_emulator(tmp_path: Path) -> None:
    port, truth = tmp_path / "s0", tmp_path / "truth.json"
    with emulator(
        "--link", str(port), "--interval", "0.2", "--truth", str(truth), "--seed", "1",
        "--fault-rate", "0.3", "--faults", "restart",
    ):  # fmt: skip
        wait_for(port)
        result = subprocess.run(
            [*S0PCM, "set-thresholds", str(port), "T2=40;T5=90;", "--timeout", "60"],
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Sent T2=40;T5=90;" in result.stdout
    assert "module took thresholds T2=40;T5=90;" in result.stdout
    assert json.loads(truth.read_text())["thresholds"] == [30, 40, 30, 30, 90]


def test_set_thresholds_times_out_without_a_startup(tmp_path: Path) -> None:
    port = tmp_path / "s0"
    with emulator("--link", str(port), "--interval", "0.2"):
        wait_for(port)
        # Another reader takes the start-up header: no start-up left to send thresholds in.
        subprocess.run([*S0PCM, "read", str(port), "--count", "2"], timeout=30, check=True)
        result = subprocess.run(
            [*S0PCM, "set-thresholds", str(port), "T1=40", "--timeout", "1.5"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 2
    assert "No confirmation within 1.5 s" in result.stderr


def test_emulator_unplugs_on_sigusr2_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port, truth = tmp_path / "s0", tmp_path / "truth.json"
    with emulator("--link", str(port), "--interval", "0.1", "--truth", str(truth)) as proc:
        wait_for(port)
        first = os.readlink(port)
        proc.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 10
        while port.exists() and os.readlink(port) == first:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        wait_for(port)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    assert not port.exists()
    doc = json.loads(truth.read_text())
    assert doc["faults"] == {"unplug": 1}
    assert doc["restarts"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["emulate", "--link", "s0", "--rate", "9=1"], "register 1..5"),
        (["emulate", "--link", "s0", "--rate", "1=-2"], "value >= 0"),
        (["emulate", "--link", "s0", "--faults", "meteor"], "meteor"),
        (["emulate", "--link", "s0", "--thresholds", "T1=0"], "outside 1..1000 ms"),
        (["set-thresholds", "/dev/null", "T9=40"], "register 9 does not exist"),
        (["set-thresholds", "--model", "2", "T3=40"], "register 3 does not exist on the S0PCM-2"),
        (["read", "--framing", "9X9"], "not like 7E1 or 8N1"),
    ],
)
def test_bad_arguments_get_a_clear_error(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert message in result.output


def test_emulator_takes_faults_from_its_control_fifo(tmp_path: Path) -> None:
    port, truth, control = tmp_path / "s0", tmp_path / "truth.json", tmp_path / "ctl"
    args = ["--link", str(port), "--interval", "0.1", "--truth", str(truth)]
    with emulator(*args, "--control", str(control)) as proc:
        wait_for(control)
        with control.open("w") as fifo:
            fifo.write("garbage\nmeteor\nrestart\nstall 0.5\n")
        deadline = time.monotonic() + 10
        while not truth.exists() or json.loads(truth.read_text())["faults"].get("stall") != 1:
            assert time.monotonic() < deadline, "faults never arrived"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    doc = json.loads(truth.read_text())
    assert doc["faults"] == {"garbage": 1, "restart": 1, "stall": 1}
    assert "not a command: 'meteor'" in err
