"""Training engine: schedule, step-seeded batches, warm-up → every stage-2 branch, exact resume after SIGKILL,
DDP with two gloo processes, NaN handling, and the flat notebook parameters.

Everything runs a tiny specmask on the smoke corpus, on CPU, with 1 thread.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import mal
from mal.config import ConfigError
from mal.models.registry import CheckpointError
from mal.plan import StudyPlan, branch_config
from mal.train import NonFiniteLossError, TrainConfig, read_history, train
from mal.training.checkpoint import file_sha256
from mal.training.data import StepBatchSampler
from mal.training.schedule import lr_at

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = {"name": "specmask", "hparams": {"n_fft": 128, "hop": 64, "depth": 2, "hidden": 4, "gru_hidden": 16}}


@pytest.fixture(scope="session")
def corpus(smoke_corpus: Path) -> Path:
    return Path(smoke_corpus)


def tiny(run_dir: Path, corpus: Path, **overrides: Any) -> dict[str, Any]:
    """A TrainConfig mapping that trains in about a second: tiny model, 0.5 s segments, 2 validation files."""
    cfg = {
        "run_dir": str(run_dir),
        "steps": 6,
        "model": TINY_MODEL,
        "data": {
            "root": str(corpus),
            "batch_size": 4,
            "segment_seconds": 0.5,
            "valid_files": 2,
            "valid_max_seconds": 1.5,
        },
        "optim": {"lr": 3e-3, "lr_warmup_steps": 2, "total_steps": 12},
        "threads": 1,
        "device": "cpu",
        "valid_every": 3,
        "checkpoint_every": 3,
        "log_every": 1,
        "progress": False,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model_state"]


# ------------------------------------------------------------------------------------------------ unit: schedule
def test_lr_schedule_ramps_then_one_cosine_over_both_stages() -> None:
    cfg = mal.train.OptimConfig(lr=1e-3, lr_warmup_steps=4, total_steps=20, min_lr_ratio=0.1)
    lrs = [lr_at(s, cfg, 20) for s in range(25)]
    assert lrs[:4] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3])
    assert lrs[4] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(lrs[4:20], lrs[5:21], strict=False))  # strictly decreasing cosine
    assert lrs[12] == pytest.approx(1e-4 + 0.9e-3 * 0.5)  # half way: mid point between peak and floor
    assert lrs[20:] == pytest.approx([1e-4] * 5)  # floor held past the end
    const = mal.train.OptimConfig(lr=1e-3, lr_warmup_steps=0, schedule="constant")
    assert {lr_at(s, const, 5) for s in range(10)} == {1e-3}


# ------------------------------------------------------------------------------------------------ unit: batches
def test_batches_depend_only_on_seed_and_step() -> None:
    full = StepBatchSampler(10, 4, seed=3, start_step=0, end_step=8)
    resumed = StepBatchSampler(10, 4, seed=3, start_step=5, end_step=8)
    assert list(full)[5:] == list(resumed)
    # Every epoch is a permutation of all items, and consecutive epochs differ.
    stream = [k for batch in full for k in batch]
    for epoch in range(3):
        assert sorted(i for e, i in stream if e == epoch) == list(range(10))
    assert [i for e, i in stream if e == 0] != [i for e, i in stream if e == 1]
    assert list(StepBatchSampler(10, 4, seed=4, start_step=0, end_step=8)) != list(full)
    # Two ranks split one global batch of 2 × 2 items: disjoint, and together the world-of-one batch of 4.
    r0 = StepBatchSampler(10, 2, seed=3, start_step=0, end_step=8, rank=0, world_size=2)
    r1 = StepBatchSampler(10, 2, seed=3, start_step=0, end_step=8, rank=1, world_size=2)
    for a, b, both in zip(r0, r1, full, strict=True):
        assert a + b == both


# ------------------------------------------------------------------------------------------------ two stages
@pytest.fixture(scope="module")
def warmup(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> mal.train.TrainResult:
    run_dir = tmp_path_factory.mktemp("warmup") / "warmup"
    return train(TrainConfig.from_params(tiny(run_dir, corpus)))


def test_warmup_writes_a_complete_run(warmup: mal.train.TrainResult) -> None:
    run = warmup.run_dir
    assert (run / "config.yaml").is_file() and warmup.best_checkpoint is not None
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["global_step"] == 6 and summary["skipped_steps"] == 0
    assert summary["step_time_s"] > 0 and summary["samples_per_s"] > 0
    assert summary["train_seconds"] < summary["wall_seconds"]  # steps only: no validation, no checkpoints
    for key in ("pesq_wb", "si_sdr"):
        assert math.isfinite(summary["valid"][key]) and math.isfinite(summary["noisy"][key])
    assert summary["valid"]["pesq_wb_files"] == 2
    hist = read_history(run)
    train_rows, valid_rows = hist[hist.kind == "train"], hist[hist.kind == "valid"]
    assert list(train_rows.step) == [1, 2, 3, 4, 5, 6] and list(valid_rows.step) == [3, 6]
    assert {"loss", "loss_l1", "loss_mrstft", "lr", "step_time_s", "samples_per_s"} <= set(train_rows.columns)
    # The checkpoint is a model checkpoint too: mal.models.load rebuilds the trained model.
    model = mal.models.load(warmup.last_checkpoint)
    x = torch.randn(1, 1, 4000) * 0.1
    with torch.no_grad():
        assert torch.equal(model(x), warmup.model(x))
    ckpt = torch.load(warmup.last_checkpoint, weights_only=True)
    assert ckpt["mal_version"] == mal.__version__ and ckpt["config"]["stage"] == "warmup"
    assert ckpt["training"]["step"] == 6 and ckpt["training"]["scheduler"] == {"step": 6, "total_steps": 12}
    assert {"python", "numpy", "torch"} <= set(ckpt["training"]["rng"])


BRANCHES = {  # name → (recipe, loss settings over the recipe's)
    "baseline": ("conventional", {}),
    "frozen": ("mal-frozen", {"mal": 1.0, "mal_variant": "frozen", "mal_layers": "all"}),
    "frozen-fe": ("mal-frozen-fe", {"mal": 1.0, "mal_variant": "frozen-fe", "mal_layers": "all"}),
    "dynamic": ("mal-dynamic", {"mal": 0.5, "mal_variant": "dynamic", "mal_layers": "bottleneck"}),
    "matched": ("mal-frozen-all", {}),  # the preset as it is: calibrated by gradient norm
    "recalibrated": ("mal-frozen-all", {}),  # calibrated again before every step (calibrate_every=1)
    "frozen-encoder": ("conventional-frozen-encoder", {}),  # the control of frozen-fe
    "random-encoder": ("mal-random-encoder", {}),  # the control of learned features
}
# How each branch calibrates (over the recipe's preset): "frozen" keeps the loss-value rule to test it too.
CALIBRATION = {
    "frozen": {"calibrate": {"mal": 1.0}, "calibrate_by": "value"},
    "matched": {},
    "recalibrated": {"calibrate_every": 1},
    "random-encoder": {},
}
DECODER_ONLY = ("frozen-fe", "frozen-encoder")


@pytest.fixture(scope="module")
def branches(warmup: mal.train.TrainResult, corpus: Path) -> dict[str, mal.train.TrainResult]:
    out = {}
    for name, (recipe, loss) in BRANCHES.items():
        cfg = tiny(
            warmup.run_dir.parent / name,
            corpus,
            stage="stage2",
            steps=3,
            init_checkpoint=str(warmup.last_checkpoint),
            recipe=recipe,
            loss=loss,
            optim={"total_steps": 0},
            **CALIBRATION.get(name, {"calibrate": {}}),
        )
        out[name] = train(TrainConfig.from_params(cfg))
    return out


def test_every_stage2_branch_continues_the_warmup(
    warmup: mal.train.TrainResult, branches: dict[str, mal.train.TrainResult]
) -> None:
    warm = state(warmup.last_checkpoint)
    first_lrs = []
    for name, result in branches.items():
        summary = result.summary
        assert summary["start_step"] == 6 and summary["global_step"] == 9, name
        hist = read_history(result.run_dir)
        rows = hist[hist.kind == "train"]
        assert list(rows.step) == [7, 8, 9]
        first_lrs.append(rows.lr.iloc[0])
        if name not in ("baseline", "frozen-encoder"):
            assert rows.loss_mal.notna().all() and rows.mal_feat_var.gt(0).all(), name
        after = state(result.last_checkpoint)
        enc_moved = any(not torch.equal(warm[k], after[k]) for k in warm if k.startswith("encoder."))
        dec_moved = any(not torch.equal(warm[k], after[k]) for k in warm if k.startswith("decoder."))
        assert dec_moved, name
        assert enc_moved == (name not in DECODER_ONLY), name  # frozen-fe and its control train the decoder only
    # One schedule: every branch's first stage-2 update uses the warm-up schedule's LR at global step 6.
    warm_cfg = TrainConfig.load(warmup.run_dir / "config.yaml")
    assert first_lrs == [pytest.approx(lr_at(6, warm_cfg.optim, 12))] * len(BRANCHES)


def test_calibrated_mal_term_starts_equal_to_the_conventional_terms(
    branches: dict[str, mal.train.TrainResult],
) -> None:
    result = branches["frozen"]
    weight = result.summary["loss_weights"]["mal"]
    assert weight != 1.0
    first = read_history(result.run_dir).query("kind == 'train'").iloc[0]
    # Calibration ran on exactly the batch and weights of the first stage-2 step.
    assert weight * first.loss_mal == pytest.approx(first.loss_l1 + first.loss_mrstft, rel=1e-4)


def test_gradient_calibrated_branch_takes_the_baselines_first_step(
    branches: dict[str, mal.train.TrainResult],
) -> None:
    matched = branches["matched"]
    assert TrainConfig.load(matched.run_dir / "config.yaml").calibrate_by == "grad-norm"
    weights = matched.summary["loss_weights"]
    assert weights["l1"] == weights["mrstft"] < 1.0 and weights["mal"] > 0  # every weight was scaled
    first = {name: read_history(branches[name].run_dir).query("kind == 'train'").iloc[0] for name in branches}
    # Step 1 of stage 2 runs on the calibration batch from the warm-up's weights: same gradient length as the
    # baseline's (issue 13 asks for 10 %; it is exact up to float error). Value calibration was not matched.
    assert first["matched"].grad_norm == pytest.approx(first["baseline"].grad_norm, rel=0.1)
    assert first["matched"].grad_norm == pytest.approx(first["baseline"].grad_norm, rel=1e-3)
    assert abs(first["frozen"].grad_norm / first["baseline"].grad_norm - 1) > 0.1


def test_recalibration_rescales_the_weights_on_every_nth_batch(
    branches: dict[str, mal.train.TrainResult],
) -> None:
    rows = {name: read_history(branches[name].run_dir).query("kind == 'train'") for name in ("matched", "recalibrated")}
    once, every = rows["matched"].weight_mal, rows["recalibrated"].weight_mal
    assert once.nunique() == 1 and every.nunique() == 3  # calibrated once vs before each of the 3 steps
    # Both calibrate the first batch from the same weights; then the weights move and the ratio follows them.
    assert every.iloc[0] == pytest.approx(once.iloc[0], rel=1e-6)
    assert branches["recalibrated"].summary["loss_weights"]["mal"] == pytest.approx(every.iloc[-1])
    # Each recalibration starts from the recipe's weights, so every step keeps the baseline's gradient length
    # (3 steps barely move the weights). Rescaling the previous calibration instead would shrink it geometrically.
    baseline = read_history(branches["baseline"].run_dir).query("kind == 'train'").grad_norm.to_numpy()
    ratios = rows["recalibrated"].grad_norm.to_numpy() / baseline
    assert ratios == pytest.approx([1.0, 1.0, 1.0], abs=0.15)
    assert "weight_mal" not in read_history(branches["baseline"].run_dir)


def test_weight_change_is_logged_per_half_and_summarised(
    warmup: mal.train.TrainResult, branches: dict[str, mal.train.TrainResult]
) -> None:
    warm = state(warmup.last_checkpoint)
    for name, result in branches.items():
        after = state(result.last_checkpoint)
        for group in ("encoder", "decoder", ""):
            keys = [k for k in warm if k.startswith(group)]
            moved = sum(float((after[k] - warm[k]).square().sum()) for k in keys) ** 0.5
            start = sum(float(warm[k].square().sum()) for k in keys) ** 0.5
            column = f"weight_change_{group}" if group else "weight_change"
            assert result.summary[column] == pytest.approx(moved / start, rel=1e-5), (name, column)
        rows = read_history(result.run_dir).query("kind == 'train'")
        assert rows.weight_change.iloc[-1] == pytest.approx(result.summary["weight_change"]), name
        assert result.summary["grad_norm_mean"] == pytest.approx(rows.grad_norm.mean()), name
    for name in DECODER_ONLY:
        assert branches[name].summary["weight_change_encoder"] == 0.0, name  # the encoder never trains there
    assert branches["baseline"].summary["weight_change_encoder"] > 0


def test_baseline_branch_is_deterministic(
    warmup: mal.train.TrainResult, branches: dict[str, mal.train.TrainResult], corpus: Path
) -> None:
    cfg = TrainConfig.load(branches["baseline"].run_dir / "config.yaml")
    again = train(cfg.replace(run_dir=str(warmup.run_dir.parent / "baseline_again")))
    a, b = state(branches["baseline"].last_checkpoint), state(again.last_checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_run_dir_guards(warmup: mal.train.TrainResult, corpus: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.load(warmup.run_dir / "config.yaml")
    with pytest.raises(FileExistsError, match="resume"):
        train(cfg)
    with pytest.raises(ConfigError, match="differs"):
        train(cfg.replace(seed=1), if_exists="resume")
    # A stage 2 that would run past the warm-up's cosine is refused rather than trained at the floor LR.
    short = tiny(tmp_path / "short", corpus, optim={"total_steps": 0})
    done = train(TrainConfig.from_params(short))
    over = tiny(tmp_path / "over", corpus, stage="stage2", steps=2, init_checkpoint=str(done.last_checkpoint))
    with pytest.raises(ConfigError, match="total_steps"):
        train(TrainConfig.from_params({**over, "optim": {"total_steps": 0}}))


# ------------------------------------------------------------------------------------------------ run folder safety
def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.relative_to(run_dir).as_posix(): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def _stage2(run_dir: Path, corpus: Path, init: Path) -> dict[str, Any]:
    return tiny(run_dir, corpus, stage="stage2", steps=2, init_checkpoint=str(init), optim={"total_steps": 0})


def test_overwrite_checks_the_new_run_before_touching_the_old_one(
    warmup: mal.train.TrainResult, corpus: Path, tmp_path: Path
) -> None:
    params = _stage2(tmp_path / "s2", corpus, warmup.last_checkpoint)
    done = train(TrainConfig.from_params(params))
    before = _files(done.run_dir)
    typo = TrainConfig.from_params({**params, "init_checkpoint": str(tmp_path / "typo.pt")})
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*typo\.pt"):
        train(typo, if_exists="overwrite")
    assert _files(done.run_dir) == before


def test_an_overwritten_run_is_kept_until_the_new_one_checkpoints(
    bomb: None, warmup: mal.train.TrainResult, corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(warmup.run_dir, run_dir)
    before = _files(run_dir)
    params = tiny(run_dir, corpus, valid_every=0, checkpoint_every=3)
    with pytest.raises(NonFiniteLossError):  # the bomb goes off at the 3rd step, before the first checkpoint
        train(TrainConfig.from_params(params), if_exists="overwrite")
    assert _files(run_dir) == before
    # A run killed before its first checkpoint: its successor finds the old run set aside and puts it back.
    (run_dir / ".previous-run").mkdir()
    for name in ("checkpoints", "history.jsonl", "summary.json", "config.yaml"):
        os.replace(run_dir / name, run_dir / ".previous-run" / name)
    (run_dir / "history.jsonl").write_text('{"step": 1, "stage": "warmup", "kind": "train", "loss": 9.0}\n')
    with pytest.raises(FileExistsError, match="already holds a training run"):
        train(TrainConfig.from_params(params))
    assert _files(run_dir) == before
    # Once the new run has written a checkpoint, the old one is gone.
    result = train(TrainConfig.from_params({**params, "nan_policy": "skip"}), if_exists="overwrite")
    assert result.summary["skipped_steps"] == 1 and not (run_dir / ".previous-run").exists()
    assert json.loads((run_dir / "summary.json").read_text())["skipped_steps"] == 1


def test_resume_refuses_a_swapped_warmup_and_follows_a_moved_run(
    warmup: mal.train.TrainResult, corpus: Path, tmp_path: Path
) -> None:
    init = tmp_path / "a" / "warmup.pt"
    init.parent.mkdir()
    shutil.copy(warmup.last_checkpoint, init)
    cfg = TrainConfig.from_params(_stage2(tmp_path / "a" / "s2", corpus, init))
    done = train(cfg)
    assert done.summary["init_sha256"] == file_sha256(warmup.last_checkpoint)
    # The whole folder moves: the run resumes from its new place (the warm-up is recognised by its content).
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    moved = cfg.replace(run_dir=str(tmp_path / "b" / "s2"), init_checkpoint=str(tmp_path / "b" / "warmup.pt"))
    assert train(moved, if_exists="resume").summary == done.summary
    other = train(TrainConfig.from_params(tiny(tmp_path / "other", corpus, seed=1)))
    shutil.copy(other.last_checkpoint, init)
    with pytest.raises(ConfigError, match=r"warmup\.pt is not the file this run started from"):
        train(cfg, if_exists="resume")


def test_resuming_a_finished_run_keeps_it_and_repairs_what_a_kill_left(
    warmup: mal.train.TrainResult, corpus: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "moved"
    shutil.copytree(warmup.run_dir, run_dir)
    cfg = TrainConfig.load(run_dir / "config.yaml").replace(run_dir=str(run_dir))
    summary = json.loads((run_dir / "summary.json").read_text())
    history = (run_dir / "history.jsonl").read_text()
    orphan = run_dir / "checkpoints" / ".last.pt.k1ll3d.tmp"
    orphan.write_bytes(b"half a checkpoint")
    with open(run_dir / "history.jsonl", "a") as fh:
        fh.write('{"step": 7, "stage": "warm')  # a row torn by the kill
    with pytest.warns(UserWarning, match=r"history\.jsonl:\d+: dropped a torn last row"):
        result = train(cfg, if_exists="resume")
    assert result.summary == summary and json.loads((run_dir / "summary.json").read_text()) == summary
    assert (run_dir / "history.jsonl").read_text() == history and not orphan.exists()
    # Killed after its last checkpoint but before its summary: the summary is rebuilt from the history.
    (run_dir / "summary.json").unlink()
    rebuilt = train(cfg, if_exists="resume").summary
    for key in ("train", "valid", "noisy"):
        assert rebuilt[key] == pytest.approx(summary[key]), key
    assert rebuilt["global_step"] == 6 and math.isnan(rebuilt["wall_seconds"])


def test_only_the_last_history_row_may_be_torn(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text('{"step": 1, "kind": "train"}\n{"step": 2, "ki\n{"step": 3, "kind": "train"}\n')
    with pytest.raises(ValueError, match=r"history\.jsonl:2: damaged history row"):
        read_history(path)


# ------------------------------------------------------------------------------------------------ NaN handling
class _Bomb(torch.nn.Module):
    """A loss term that turns NaN on its third call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        zero = (estimate - reference).abs().mean() * 0
        return zero + (math.nan if self.calls == 3 else 0.0)


@pytest.fixture
def bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    import mal.losses

    real = mal.losses.build_objective

    def with_bomb(cfg: Any, model: Any = None) -> Any:
        objective = real(cfg, model)
        terms = {**objective.terms, "bomb": _Bomb()}
        return mal.losses.WeightedSum(terms, {**objective.weights, "bomb": 1.0})

    monkeypatch.setattr(mal.losses, "build_objective", with_bomb)


def test_nan_loss_stops_naming_step_and_term(bomb: None, corpus: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.from_params(tiny(tmp_path / "nan", corpus, checkpoint_every=1, valid_every=0))
    with pytest.raises(NonFiniteLossError, match=r"global step 2 .*'bomb'") as stopped:
        train(cfg)
    assert "good state" not in str(stopped.value)  # it cannot know that the file on disk is still good
    last = torch.load(tmp_path / "nan" / "checkpoints" / "last.pt", weights_only=True)
    assert last["training"]["step"] == 2  # the bad step wrote nothing
    assert all(torch.isfinite(v).all() for v in last["model_state"].values())


def test_nan_loss_skip_policy_counts_and_continues(bomb: None, corpus: Path, tmp_path: Path) -> None:
    cfg = TrainConfig.from_params(tiny(tmp_path / "skip", corpus, nan_policy="skip", valid_every=0))
    result = train(cfg)
    assert result.summary["skipped_steps"] == 1 and result.step == 6
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


# ------------------------------------------------------------------------------------------------ resume
def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mal", "train", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_the_uninterrupted_weights(corpus: Path, tmp_path: Path) -> None:
    base = tiny(tmp_path / "x", corpus, steps=30, checkpoint_every=4, valid_every=10, log_every=2)
    base["optim"]["total_steps"] = 30
    configs = {}
    for name in ("straight", "killed"):
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump({**base, "run_dir": str(tmp_path / name)}))
    subprocess.run(_cli("--config", str(configs["straight"])), env=_env(), check=True, capture_output=True)

    proc = subprocess.Popen(_cli("--config", str(configs["killed"])), env=_env(), stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, weights_only=True)["training"]["step"]
    assert killed_at < 30, "the run finished before it could be killed; the test proved nothing"

    subprocess.run(_cli("--config", str(configs["killed"]), "--resume"), env=_env(), check=True, capture_output=True)
    a, b = state(tmp_path / "straight" / "checkpoints" / "last.pt"), state(last)
    assert all(torch.equal(a[k], b[k]) for k in a), f"resumed from step {killed_at} but the weights differ"
    # The history is rewritten from the checkpoint on: same rows, same losses.
    h1, h2 = read_history(tmp_path / "straight"), read_history(tmp_path / "killed")
    assert list(h1.step) == list(h2.step)
    assert h1.loss.tolist() == h2.loss.tolist()


# ------------------------------------------------------------------------------------------------ DDP
DDP_DRIVER = """
import os, sys, torch
from mal.train import TrainConfig, train
result = train(TrainConfig.load(sys.argv[1]))
torch.save(result.model.state_dict(), os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))
"""


@pytest.mark.slow
def test_ddp_two_gloo_processes_hold_identical_weights(corpus: Path, tmp_path: Path) -> None:
    cfg = tiny(tmp_path / "ddp", corpus, steps=3, valid_every=0, recipe="mal-frozen-all", calibrate={})
    cfg["data"]["batch_size"] = 2
    (tmp_path / "ddp.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "driver.py").write_text(DDP_DRIVER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += [str(tmp_path / "driver.py"), str(tmp_path / "ddp.yaml"), str(tmp_path)]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert all(torch.equal(r0[k], r1[k]) for k in r0)
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_step"] == 3
    torch.manual_seed(0)  # the trainer seeds with cfg.seed before building the model
    init = mal.models.build(TINY_MODEL["name"], **TINY_MODEL["hparams"]).state_dict()
    assert any(not torch.equal(r0[k], init[k]) for k in init), "no training happened"


# ------------------------------------------------------------------------------------------- recipes, parameters
def test_a_recipe_preset_fills_the_loss_and_explicit_values_win() -> None:
    conv = TrainConfig.from_params({})
    assert conv.recipe == "conventional" and conv.loss.mal == 0 and conv.calibrate == {}
    mal_cfg = TrainConfig.from_params({"recipe": "mal-frozen", "loss": {"mal_layers": [0, -1]}})
    assert (mal_cfg.loss.mal, mal_cfg.loss.mal_variant, mal_cfg.loss.mal_layers) == (1.0, "frozen", [0, -1])
    assert mal_cfg.calibrate == {"mal": 1.0} and mal_cfg.loss.l1 == 1.0
    with pytest.raises(ConfigError, match="unknown recipe 'mal'.*mal-frozen"):
        TrainConfig.from_params({"recipe": "mal"})
    # Controls: a preset may freeze the encoder; a branch takes that from its recipe, not from its warm-up.
    control = TrainConfig.from_params({"recipe": "conventional-frozen-encoder"})
    assert control.freeze_encoder and control.loss.mal == 0 and not conv.freeze_encoder
    assert not TrainConfig.from_params(
        {"recipe": "conventional-frozen-encoder", "freeze_encoder": False}
    ).freeze_encoder
    warm = TrainConfig.from_params({}).to_dict()
    branch = branch_config(warm, {}, {"recipe": "conventional-frozen-encoder", "init_checkpoint": "w.pt"})
    assert branch.freeze_encoder and branch.stage == "stage2"
    random_cfg = TrainConfig.from_params({"recipe": "mal-random-encoder"})
    assert (random_cfg.loss.mal_init, random_cfg.loss.mal_variant, random_cfg.calibrate) == (
        "random",
        "frozen",
        {"mal": 1.0},
    )
    assert TrainConfig.from_params({"recipe": "mal-frozen-all-but-first"}).loss.mal_layers == "all-but-first"
    # The recipe label cannot disagree with the terms the loss switches on.
    with pytest.raises(ConfigError, match="recipe='conventional' switches on no feature term"):
        TrainConfig.from_params({"loss": {"mal": 1.0}})


def test_notebook_parameters_rebuild_the_nested_config() -> None:
    params = {
        **TrainConfig.parameters(),
        "stage": "stage2",
        "init_checkpoint": "w/last.pt",
        "recipe": "mal-frozen-fe",
        "steps": 7,
        "batch_size": 3,
        "overrides": {"optim.lr_warmup_steps": 5, "model.hparams": {"hidden": 8}, "calibrate.mal": 2.0},
    }
    cfg = TrainConfig.from_parameters(params)
    assert (cfg.loss.mal_variant, cfg.calibrate, cfg.steps, cfg.data.batch_size) == ("frozen-fe", {"mal": 2.0}, 7, 3)
    assert cfg.optim.lr_warmup_steps == 5 and cfg.model.hparams == {"hidden": 8}
    assert TrainConfig.from_parameters(cfg.to_parameters()) == cfg  # the flat view loses nothing
    with pytest.raises(ConfigError, match="unknown parameter"):
        TrainConfig.from_parameters({"overrides": {"optim.nope": 1}})
    with pytest.raises(ConfigError, match="unknown parameter.*mal_variant"):
        TrainConfig.from_parameters({"mal_variant": "frozen"})
    with pytest.raises(ConfigError, match="init_checkpoint"):
        TrainConfig.from_parameters({"stage": "stage2"})


def test_every_run_of_the_named_studies_branches_from_its_warmup_with_one_stage2_recipe() -> None:
    for profile in ("quick", "full"):
        study = StudyPlan.for_profile(profile)
        for name, (arch, _) in study.warmups().items():
            warm = study.training_config(name)
            branches = [study.training_config(s) for s, spec in study.systems.items() if spec["arch"] == arch]
            for cfg in branches:
                assert cfg.stage == "stage2" and cfg.init_checkpoint == f"{warm.run_dir}/checkpoints/last.pt"
                assert (cfg.model, cfg.data) == (warm.model, warm.data), cfg.run_name
                assert cfg.optim.total_steps == 0, cfg.run_name
                if cfg.optim.schedule == "constant":  # stage 2's own rate, screened on validation
                    assert cfg.optim.lr == study.stage2["optim"]["lr"]
                else:  # otherwise stage 2 continues the warm-up's decay
                    assert cfg.optim.lr == warm.optim.lr and warm.optim.total_steps >= warm.steps + cfg.steps
            # The arms of one architecture differ in their loss, never in the optimiser or the step budget.
            assert all(
                (c.optim, c.steps, c.calibrate_every)
                == (branches[0].optim, branches[0].steps, branches[0].calibrate_every)
                for c in branches
            ), name
    with pytest.raises(ConfigError, match="trains no run named 'nope'.*warmup-bandcrn"):
        StudyPlan.for_profile("quick").training_config("nope")


def test_cli_study_needs_a_run(capsys: pytest.CaptureFixture[str]) -> None:
    from mal.__main__ import main

    assert main(["train", "--study", "quick"]) != 0
    assert "--study needs --run" in capsys.readouterr().err
