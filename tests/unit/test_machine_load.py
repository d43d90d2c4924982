"""The machine-load account every benchmark prints: hypervisor steal apart from other processes."""

from __future__ import annotations

import os

import pytest

from failover import machine


def test_cpu_times_separates_steal_from_busy() -> None:
    # user nice system idle iowait irq softirq steal guest guest_nice
    busy, steal = machine.cpu_times("cpu  100 2 30 5000 7 1 4 55 0 0")
    assert busy == 100 + 2 + 30 + 1 + 4
    assert steal == 55


def test_cpu_times_of_a_kernel_without_a_steal_column() -> None:
    assert machine.cpu_times("cpu  100 2 30 5000 7 1 4") == (137, 0)


@pytest.mark.parametrize("line", ["", "cpu0 1 2 3 4 5 6 7 8", "intr 1 2 3"])
def test_cpu_times_refuses_what_is_not_the_machine_line(line: str) -> None:
    with pytest.raises(ValueError):
        machine.cpu_times(line)


def test_the_load_account_names_steal_and_keeps_it_out_of_other_processes(monkeypatch) -> None:
    readings = iter([(10.0, 1.0), (14.0, 3.0)])  # (busy, steal) CPU-s at start and at finish
    monkeypatch.setattr(machine, "_proc_stat", lambda: next(readings))
    monkeypatch.setattr(machine, "own_cpu_s", lambda: 0.0)
    clock = iter([100.0, 110.0])  # a 10 s window
    monkeypatch.setattr(machine.time, "monotonic", lambda: next(clock))
    load = machine.MachineLoad()
    ml = load.finish()
    assert ml["machine_busy_cpu_s"] == 4.0
    assert ml["other_processes_cpu_s"] == 4.0  # the 2 CPU-s of steal are not counted as anyone's work
    assert ml["hypervisor_steal_cpu_s"] == 2.0
    cores = len(os.sched_getaffinity(0))
    assert ml["hypervisor_steal_share"] == pytest.approx(2.0 / (10 * cores), abs=1e-4)
    line = machine.load_line(ml)
    assert line.startswith("machine load while measuring: other processes used 4.0 CPU-s")
    assert "hypervisor steal 2.0 CPU-s" in line


def test_the_load_account_on_this_machine_is_well_formed() -> None:
    ml = machine.MachineLoad().finish()
    assert ml["hypervisor_steal_cpu_s"] >= 0 and ml["hypervisor_steal_share"] >= 0
    assert "hypervisor steal" in machine.load_line(ml)


def test_a_run_the_host_stole_from_says_its_tails_are_the_hosts() -> None:
    ml = {
        "other_processes_cpu_s": 0.0,
        "other_processes_mean_cores": 0.0,
        "machine_busy_cpu_s": 32.6,
        "wall_s": 94.0,
        "hypervisor_steal_cpu_s": 33.05,
        "hypervisor_steal_share": 0.176,
        "loadavg_at_end": [0.88, 1.0, 1.0],
    }
    line = machine.load_line(ml)
    assert "hypervisor steal 33.05 CPU-s (17.6 % of the cores' time)" in line
    assert "WARNING: the host took 17.6 %" in line
    quiet = machine.load_line({**ml, "hypervisor_steal_cpu_s": 0.01, "hypervisor_steal_share": 0.0001})
    assert "WARNING" not in quiet
