"""srml bench prints its figure last; the throughput script runs srml beside the peers."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_bench_prints_agent_steps_per_s_last(backend):
    p = subprocess.run(
        [sys.executable, "-m", "srml", "bench", "--backend", backend, "--pop", "32", "--lifetime", "20", "--repeats", "1"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    last = p.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"agent_steps_per_s=([0-9.e+]+)", last)
    assert m and float(m.group(1)) > 0, last
    assert "threads=" in p.stdout and "P=32" in p.stdout


def test_bench_rejects_bad_sizes():
    p = subprocess.run(
        [sys.executable, "-m", "srml", "bench", "--pop", "0"], capture_output=True, text=True
    )
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(
    not (PEERS / "peer_gymnasium_numpy.py").exists(),
    reason="../shared/peers is not beside this checkout",
)
def test_throughput_script_writes_a_table_with_ratios(tmp_path):
    out = tmp_path / "RESULTS.md"
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "throughput.py"), "--pops", "16", "--lifetime", "10", "--out", str(out),
         "--rows", "srml numba, fused twin, lanes", "srml numpy reference"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    table = out.read_text()
    assert "peer: Gymnasium+numpy" in table and "srml numba, fused twin, lanes" in table
    assert re.search(r"srml numba, fused twin, lanes \| [0-9.e+]+ \([0-9.]+x\)", table), table
    assert "failed" not in table


def test_lanes_script_prints_the_three_kernels_with_ratios():
    p = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "lanes.py"), "--pop", "70", "--lifetime", "5",
         "--repeats", "1", "--update", "tanh", "--trained", "3000"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0].startswith("P=70 T=5 threads=1 best of 1") and "update tanh" in lines[0]
    assert "genomes trained 3e+03 env steps, pool median" in lines[0]
    for name, line in zip(("agent", "lanes", "lanes --fast-exp"), lines[1:], strict=True):
        m = re.fullmatch(rf"{re.escape(name)} +([0-9.e+]+) agent-steps/s +([0-9.]+)x .*", line)
        assert m and float(m.group(1)) > 0, line
    assert lines[1].endswith("1.00x the per-agent kernel")
