"""SIGINT, SIGTERM and SIGHUP stop a run with a checkpoint at that moment and a resume hint."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

ARGS = ["--backend", "numpy", "--batch", "8", "--pool-size", "16", "--lifetime", "40",
        "--generations", "100000", "--checkpoint-every", "1000", "--no-progress"]  # fmt: skip


@pytest.mark.parametrize(
    "sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_signal_checkpoints_and_says_how_to_resume(tmp_path, sig, code):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "srml", "run", *ARGS, "--out", str(out)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        log = out / "log.jsonl"
        if log.exists() and log.read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(sig)
    assert proc.wait(timeout=60) == code
    err = proc.stderr.read()
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("srml: interrupted by"), err
    assert last.endswith(f"srml run --resume {out}"), err
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    with np.load(out / "pool.npz") as z:
        meta = json.loads(z["meta"].tobytes().decode())
    assert meta["generation"] == rows[-1]["generation"] >= 3  # the checkpoint is this moment's
    # the checkpoint resumes: the log continues from the interrupted generation, gapless
    n = rows[-1]["generation"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "srml", "run", "--resume", str(out), "--no-progress"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and (out / "log.jsonl").read_text().count("\n") < n + 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143, proc.stderr.read()
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["generation"] for r in rows] == list(range(1, len(rows) + 1))
    assert len(rows) >= n + 2


def test_a_second_ctrl_c_stops_at_once_and_says_how_to_resume(tmp_path):
    """Ctrl-C twice: no checkpoint of that moment, but the run directory is kept and the one
    line says so with the resume command (before: a bare 'srml: interrupted')."""
    out = tmp_path / "run"
    args = [*ARGS, "--lifetime", "4000", "--checkpoint-every", "1", "--generations", "5"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "srml", "run", *args, "--out", str(out)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log, deadline = out / "log.jsonl", time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 2):
        time.sleep(0.01)
    time.sleep(0.3)  # past generation 2's checkpoint write, early in generation 3
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    err = proc.stderr.read()
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("srml: interrupted at once"), err
    assert last.endswith(f"srml run --resume {out}"), err
    assert len(log.read_text().splitlines()) < 5
    p = subprocess.run(
        [sys.executable, "-m", "srml", "run", "--resume", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["generation"] for r in rows] == [1, 2, 3, 4, 5]
