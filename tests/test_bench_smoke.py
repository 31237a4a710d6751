"""`make bench` keeps working: every benchmark runs its quick workload to the end and prints
its figures (no figure is judged here: speed targets live in the benchmarks, not in tests).
A change that breaks a benchmark's workload (the verifier finding the bench's own recording
wanting, say) fails here, not months later when someone measures."""

import json
import subprocess
import sys


def test_every_benchmark_runs_its_quick_workload_and_prints_its_figures():
    listed = subprocess.run(
        [sys.executable, "-m", "bench", "--list"], capture_output=True, text=True, timeout=60
    )
    assert listed.returncode == 0, listed.stderr
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    names = {f["name"] for f in figures}
    assert {"verify_throughput", "crypto_throughput", "upload_throughput"} <= names
    assert all(isinstance(f["value"], (int, float)) for f in figures)
