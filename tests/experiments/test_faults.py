"""Fault injection on sweeps and the results store: kills, full disks, corrupt records, lost Dask workers,
NaN losses, signals, concurrent sweeps, runs without test points."""

import errno
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import sweep_fakes
from click.testing import CliRunner
from sweep_fakes import session_processes, start_sweep, wait_for

from experiments.store import ResultStore, read_results
from experiments.sweep import SweepConfig, run_sweep
from spiking_rhm import api
from spiking_rhm.config import RunConfig
from spiking_rhm.errors import SpikingRHMError
from spiking_rhm.rules import base

RHM = {"v": 8, "m": 4, "n_c": 8, "s": 2, "L": 2}  # P_max = 512
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture(autouse=True)
def fake_rule(monkeypatch):
    base._load_builtin_rules()
    monkeypatch.setitem(base._REGISTRY, "fake", sweep_fakes.FakeRule)


def sweep_dict(**changes):
    data = {"rules": ["fake"], "P": [16, 32], "seeds": [0], "rhm": dict(RHM), "workers": 1}
    data.update(changes)
    return data


def calls(log: Path) -> list[str]:
    """run ids of the trainings logged by the fake, one per call."""
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def record(run_id="abc", **changes):
    return {"run_id": run_id, "status": "ok", "P": 1, "seed": 0, "test_error": 0.5, "metrics": {}, "config": {},
            **changes}


# -- the record write ---------------------------------------------------------------
@linux_only
def test_kill_during_a_record_write_keeps_the_old_record_and_the_temporary_goes_at_once(tmp_path):
    script = f"""
import os, time
from experiments.store import ResultStore
store = ResultStore({str(tmp_path)!r})
store.add({record(version=1)!r})
def stuck(fd):
    open({str(tmp_path / 'writing')!r}, "w").close()
    time.sleep(3600)
os.fsync = stuck
store.add({record(version=2)!r})
"""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        wait_for(lambda: (tmp_path / "writing").exists(), proc, what="the second write")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    temporaries = list((tmp_path / "records").glob(".tmp-*"))
    assert len(temporaries) == 1  # the killed writer's, complete but never moved into place
    assert json.loads((tmp_path / "records" / "abc.json").read_text())["version"] == 1
    assert [r["version"] for r in read_results(tmp_path)] == [1]
    ResultStore(tmp_path)  # its writer is dead: removed now, not after ten minutes
    assert not list((tmp_path / "records").glob(".tmp-*"))


def test_a_live_writers_temporary_is_kept(tmp_path):
    from spiking_rhm.atomic import _writer_tag

    (tmp_path / "records").mkdir()
    live = tmp_path / "records" / f".tmp-{_writer_tag()}x.tmp"  # this process: alive
    live.write_text("{")
    ResultStore(tmp_path)
    assert live.exists()


def test_full_disk_gives_one_line_and_keeps_earlier_records(tmp_path, monkeypatch):
    from spiking_rhm.cli import cli

    monkeypatch.setitem(api.BACKEND_TRAINERS, "rate", "sweep_fakes:fake_backend")
    args = ["curve", "--rule", "fake", "--v", "8", "--m", "4", "--nc", "8", "--s", "2", "--L", "2", "--seeds", "0",
            "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]
    assert CliRunner().invoke(cli, [*args, "--P", "16"]).exit_code == 0
    before = read_results(tmp_path / "out")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    result = CliRunner().invoke(cli, [*args, "--P", "16,32"])
    monkeypatch.undo()
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write") and "No space left on device" in lines[0]
    assert read_results(tmp_path / "out") == before
    assert not list((tmp_path / "out" / "records").glob(".tmp-*")) and not list((tmp_path / "out").glob(".tmp-*"))


def test_store_write_errors_are_spiking_rhm_errors(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(SpikingRHMError, match="No space left on device"):
        store.add(record())


# -- corrupt records ------------------------------------------------------------------
def test_corrupt_record_is_restored_from_the_index(tmp_path, capsys):
    store = ResultStore(tmp_path)
    store.add(record("abc"))
    store.add(record("def", P=2))
    (tmp_path / "records" / "abc.json").write_text('{"run_id": "ab')
    records = read_results(tmp_path)
    assert [r["run_id"] for r in records] == ["abc", "def"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "restored from results.jsonl" in err[0]
    assert json.loads((tmp_path / "records" / "abc.json").read_text()) == record("abc")


def test_corrupt_record_without_a_copy_is_quarantined_and_its_run_redone(tmp_path, capsys, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("SWEEP_FAKE_LOG", str(log))
    sweep = SweepConfig.from_dict(sweep_dict())
    run_sweep(sweep, tmp_path / "out", train_fn=sweep_fakes.fake_train, progress=False)
    broken = sweep.runs()[0].run_id()
    (tmp_path / "out" / "records" / f"{broken}.json").write_bytes(b"\x00\x00garbage")
    (tmp_path / "out" / "results.jsonl").write_text("")  # no copy in the index either
    capsys.readouterr()
    summary = run_sweep(sweep, tmp_path / "out", train_fn=sweep_fakes.fake_train, progress=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "moved to" in err[0] and "quarantine" in err[0] and "redone" in err[0]
    assert summary.skipped == 1 and summary.statuses == {"ok": 1}
    assert calls(log) == [cfg.run_id() for cfg in sweep.runs()] + [broken]
    assert len(list((tmp_path / "out" / "records" / "quarantine").iterdir())) == 1
    assert len(read_results(tmp_path / "out")) == 2
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 2


def test_pstar_works_beside_a_corrupt_record(tmp_path, monkeypatch):
    from spiking_rhm.cli import cli

    sweep = SweepConfig.from_dict(sweep_dict(P=[16, 32, 64], seeds=[0, 1]))
    run_sweep(sweep, tmp_path, train_fn=sweep_fakes.fake_train, progress=False)
    (tmp_path / "results.jsonl").unlink()
    (tmp_path / "records" / f"{sweep.runs()[0].run_id()}.json").write_text("{")
    result = CliRunner().invoke(cli, ["pstar", str(tmp_path), "--eps", "0.9", "--boot", "10"])
    assert result.exit_code == 0, result.output
    assert "fake [rate]" in result.output and "quarantine" in result.output


# -- NaN, no test points -----------------------------------------------------------------
def test_nan_mid_training_is_diverged_and_the_sweep_goes_on(tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    monkeypatch.setenv("SWEEP_FAKE_LOG", str(log))
    monkeypatch.setenv("SWEEP_FAKE_NAN_P", "32")  # the loss of the middle run turns NaN at epoch 3
    sweep = SweepConfig.from_dict(sweep_dict(P=[16, 32, 64]))
    summary = run_sweep(sweep, tmp_path, train_fn=sweep_fakes.fake_train, progress=False)
    assert summary.statuses == {"ok": 2, "diverged": 1}
    assert len(calls(log)) == 3  # the run after the diverged one was trained
    by_P = {r["P"]: r for r in read_results(tmp_path)}
    diverged = by_P[32]
    assert diverged["status"] == "diverged" and diverged["metrics"]["diverged"]
    assert diverged["metrics"]["epochs_run"] == 3 and diverged["test_error"] is None
    assert by_P[16]["status"] == by_P[64]["status"] == "ok"
    # final: a rerun does not train it again
    assert run_sweep(sweep, tmp_path, train_fn=sweep_fakes.fake_train, progress=False).skipped == 3


def test_no_test_points_status(tmp_path):
    cfg = RunConfig.from_dict({"rhm": RHM, "P": "max", "rule": "bp"})
    rec = api.make_record(cfg, {"test_error": float("nan"), "train_error": 0.0, "diverged": False}, 1.0)
    assert rec["status"] == "no-test-points" and rec["test_error"] is None and rec["train_error"] == 0.0
    rec = api.make_record(cfg, {"test_error": float("nan"), "train_error": float("nan"), "diverged": True}, 1.0)
    assert rec["status"] == "diverged"
    cfg = cfg.replace(P=500, P_test=0)
    assert api.make_record(cfg, {"test_error": float("nan"), "train_error": 0.1}, 1.0)["status"] == "no-test-points"


def test_p_max_sweep_records_no_diverged_run_and_pstar_flags_it(tmp_path, monkeypatch):
    from spiking_rhm.cli import cli

    log = tmp_path / "calls.log"
    monkeypatch.setenv("SWEEP_FAKE_LOG", str(log))
    monkeypatch.setitem(api.BACKEND_TRAINERS, "rate", "sweep_fakes:fake_backend")
    args = ["curve", "--rule", "fake", "--v", "8", "--m", "4", "--nc", "8", "--s", "2", "--L", "2", "--P", "256,max",
            "--seeds", "0", "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "P = 512 = P_max" in result.output and "no-test-points" in result.output
    records = read_results(tmp_path / "out")
    assert sorted(r["status"] for r in records) == ["no-test-points", "ok"]
    assert CliRunner().invoke(cli, args).exit_code == 0 and len(calls(log)) == 2  # final: not redone
    result = CliRunner().invoke(cli, ["pstar", str(tmp_path / "out"), "--boot", "10"])
    assert result.exit_code == 0 and "1 without test points" in result.output and "diverged" not in result.output


def test_an_old_diverged_record_without_test_points_is_redone(tmp_path):
    sweep = SweepConfig.from_dict(sweep_dict(P=["max"]))
    (cfg,) = sweep.runs()
    old = api.make_record(cfg, {"test_error": 0.0, "train_error": 0.0, "diverged": False}, 1.0, status="diverged")
    ResultStore(tmp_path).add(old)
    summary = run_sweep(sweep, tmp_path, train_fn=sweep_fakes.fake_train, progress=False)
    assert summary.statuses == {"no-test-points": 1}
    assert [r["status"] for r in read_results(tmp_path)] == ["no-test-points"]


# -- signals and process clean-up -------------------------------------------------------
def _hanging_sweep(tmp_path, cli: bool):
    out, log = tmp_path / "out", tmp_path / "calls.log"
    env = {"SWEEP_FAKE_LOG": str(log), "SWEEP_FAKE_HANG_P": "64"}
    if cli:
        args = ["curve", "--rule", "fake", "--v", "8", "--m", "4", "--nc", "8", "--s", "2", "--L", "2",
                "--P", "16,32,64,128", "--seeds", "0", "--out", out, "--workers", "2", "--quiet"]
    else:
        args = sweep_dict(P=[16, 32, 64, 128], out=str(out), workers=2)
    proc = start_sweep(args, env)
    wait_for(lambda: Path(str(log) + ".hang").exists() and len(list((out / "records").glob("*.json"))) == 3,
             proc, what="the hanging run")
    assert len(session_processes(proc.pid)) >= 3  # the sweep and its two workers
    return proc, out


def _gone_within(sid: int, seconds: float) -> list[int]:
    """The processes of session ``sid`` still alive ``seconds`` after now (returns early once none is)."""
    deadline = time.time() + seconds
    while session_processes(sid) and time.time() < deadline:
        time.sleep(0.1)
    return session_processes(sid)


@linux_only
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_sigint_stops_the_sweep_cleanly(tmp_path, signum):
    proc, out = _hanging_sweep(tmp_path, cli=True)
    try:
        os.kill(proc.pid, signum)  # the parent only, as `kill` or Ctrl-C in a terminal (Ctrl-C hits the workers too)
        stdout, stderr = proc.communicate(timeout=30)
        alive = _gone_within(proc.pid, 5.0)
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if session_processes(proc.pid) else None
    assert proc.returncode == 128 + signum, (stdout, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"interrupted by {signal.Signals(signum).name}: 3 of 4 runs finished")
    assert "rerun the same command to resume" in lines[0]
    assert alive == []
    assert sorted(r["P"] for r in read_results(out)) == [16, 32, 128]


@linux_only
def test_sigkill_of_the_parent_takes_its_workers_down(tmp_path):
    proc, out = _hanging_sweep(tmp_path, cli=False)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        alive = _gone_within(proc.pid, 5.0)
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if session_processes(proc.pid) else None
    assert alive == []


# -- concurrent sweeps ---------------------------------------------------------------
def test_two_concurrent_sweeps_compute_each_run_once(tmp_path):
    out, log = tmp_path / "out", tmp_path / "calls.log"
    env = {"SWEEP_FAKE_LOG": str(log), "SWEEP_FAKE_SLEEP": "1.0"}
    a = sweep_dict(P=[16, 32, 64], seeds=[0, 1], out=str(out), workers=2)
    b = sweep_dict(P=[16, 32, 64, 128], seeds=[0, 1], out=str(out), workers=2)  # a's runs, in a's order, and 2 more
    procs = [start_sweep(a, env), start_sweep(b, env)]
    summaries = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        summaries.append(json.loads(stdout.strip().splitlines()[-1]))
    grid = {cfg.run_id() for d in (a, b) for cfg in SweepConfig.from_dict(d).runs()}
    assert len(grid) == 8
    assert sorted(calls(log)) == sorted(grid)  # every run trained exactly once
    ran = [sum(s["statuses"].values()) for s in summaries]
    assert sum(ran) == 8
    for s, size in zip(summaries, (6, 8)):
        assert s["skipped"] + sum(s["statuses"].values()) + s["by_others"] == size
    index = [json.loads(line)["run_id"] for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted(index) == sorted(grid)


def test_a_run_locked_by_another_process_is_waited_for(tmp_path, monkeypatch):
    """Serial sweep: the run another sweep holds is done last, after its lock is released (here with a record)."""
    log = tmp_path / "calls.log"
    monkeypatch.setenv("SWEEP_FAKE_LOG", str(log))
    sweep = SweepConfig.from_dict(sweep_dict(P=[16, 32, 64]))
    held = sweep.runs()[0]
    store = ResultStore(tmp_path)
    release = threading.Event()
    ready = threading.Event()

    def other_sweep():
        with store.run_lock(held.run_id()) as got:
            assert got
            ready.set()
            release.wait(30)
            store.add(sweep_fakes.fake_train(held))

    thread = threading.Thread(target=other_sweep)
    thread.start()
    ready.wait(10)
    result = {}
    runner = threading.Thread(target=lambda: result.update(
        summary=run_sweep(sweep, tmp_path, train_fn=sweep_fakes.fake_train, progress=False)))
    runner.start()
    wait_for(lambda: len(calls(log)) == 2, what="the two free runs")
    time.sleep(0.5)  # the sweep now waits for the held run
    assert runner.is_alive() and len(calls(log)) == 2
    release.set()
    thread.join(30)
    runner.join(30)
    summary = result["summary"]
    assert summary.statuses == {"ok": 2} and summary.by_others == 1
    assert sorted(calls(log)) == sorted(cfg.run_id() for cfg in sweep.runs())


# -- Dask ---------------------------------------------------------------------------
@linux_only
def test_a_killed_dask_worker_costs_only_its_unfinished_runs(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    out, log = tmp_path / "out", tmp_path / "calls.log"
    here = Path(sweep_fakes.__file__).parent
    for key, value in {"SWEEP_FAKE_LOG": str(log), "SWEEP_FAKE_HANG_P": "64", "SWEEP_FAKE_HANG_ONCE": "1",
                       "PYTHONPATH": os.pathsep.join([str(here), str(here.parents[1])]),
                       "OMP_NUM_THREADS": "1"}.items():
        monkeypatch.setenv(key, value)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=3, processes=True, dashboard_address=None) as cluster:
        sweep = SweepConfig.from_dict(sweep_dict(P=[16, 32, 64], dask=cluster.scheduler_address, out=str(out)))
        result = {}
        thread = threading.Thread(target=lambda: result.update(
            summary=run_sweep(sweep, train_fn=sweep_fakes.fake_train, progress=False)))
        thread.start()
        wait_for(lambda: Path(str(log) + ".hang").exists() and len(list((out / "records").glob("*.json"))) == 2,
                 what="two finished runs and the hanging one")
        with distributed.Client(cluster.scheduler_address) as client:
            (pid,) = client.run(os.getpid).values()
        os.kill(pid, signal.SIGKILL)  # the nanny starts a new worker, which redoes the lost run
        thread.join(120)
    assert not thread.is_alive()
    assert result["summary"].statuses == {"ok": 3}
    by_P = {cfg.run_id(): cfg.P for cfg in sweep.runs()}
    trained = sorted(by_P[run_id] for run_id in calls(log))
    assert trained == [16, 32, 64, 64]  # the finished runs are not computed again
    assert sorted(r["P"] for r in read_results(out)) == [16, 32, 64]
