"""The CUDA check script's wiring, run on the CPU (the GPU run itself needs the device machine)."""

from __future__ import annotations

import argparse
import math

import pytest

from benchmarks import gpu_check


def test_every_recipe_trains_and_is_timed_against_the_conventional_step(tmp_path) -> None:
    args = argparse.Namespace(batch=2, seconds=0.5, repeats=1, device="cpu", threads=1)
    rows = gpu_check.check_model("bandcrn", {}, args, tmp_path)
    assert [r["recipe"] for r in rows] == [*gpu_check.RECIPES, "conventional (fp32)"]
    assert rows[0]["ratio"] == 1.0 and all(r["step_s"] > 0 for r in rows)
    assert all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in rows)


def test_without_cuda_it_says_so_and_exits_2(capsys) -> None:
    if gpu_check.torch.cuda.is_available():
        pytest.skip("CUDA is present: the check would run")
    assert gpu_check.main([]) == 2
    assert "no CUDA device" in capsys.readouterr().err
