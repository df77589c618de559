"""mal.evaluate: systems × datasets, tidy per-file rows, bootstrap summaries and paired differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from speech_signals import mix_at_snr, speech_like

import mal.models
from mal.__main__ import main
from mal.config import ConfigError
from mal.evaluate import DatasetSpec, EvalConfig, evaluate, load_result
from mal.metrics import score
from mal.stats import improvement_table, paired_difference

SR = 16000
METRICS = ["pesq_wb", "si_sdr", "stoi"]
SNRS = (0.0, 5.0, 10.0, 15.0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A 'folders' dataset: four good pairs at known SNRs and one corrupt noisy file."""
    root = tmp_path_factory.mktemp("folders")
    (root / "clean").mkdir()
    (root / "noisy").mkdir()
    audio = {}
    rng = np.random.default_rng(0)
    for k, snr in enumerate(SNRS):
        clean = (speech_like(2.0, SR, seed=20 + k)).astype(np.float32)
        noisy = mix_at_snr(clean, rng.standard_normal(clean.size), snr).astype(np.float32)
        sf.write(root / "clean" / f"utt{k}.wav", clean, SR, subtype="FLOAT")
        sf.write(root / "noisy" / f"utt{k}.wav", noisy, SR, subtype="FLOAT")
        audio[f"utt{k}"] = (clean, noisy)
    sf.write(root / "clean" / "broken.wav", speech_like(2.0, SR, seed=9).astype(np.float32), SR)
    (root / "noisy" / "broken.wav").write_bytes(b"RIFF\x00\x00 definitely not audio")
    return str(root), audio


@pytest.fixture(scope="module")
def result(folders, tmp_path_factory):
    root, _ = folders
    ckpt = tmp_path_factory.mktemp("ckpt") / "specmask.pt"
    mal.models.save(mal.models.build("specmask"), ckpt)
    out = tmp_path_factory.mktemp("eval")
    with pytest.warns(UserWarning, match="could not be loaded"):
        return evaluate(
            {"toy": f"folders:{root}"},
            {"specmask-untrained": str(ckpt)},
            METRICS,
            workers=1,
            out_dir=out,
            progress=False,
            audio_examples=2,  # 'broken' sorts first and has no audio; utt0 is written
            chunk_seconds=1.0,  # forces chunked overlap-add on the 2 s files
            baselines=["noisy", "spectral-gating"],
        )


def test_per_file_table_is_tidy_and_complete(result) -> None:
    pf = result.per_file
    assert list(pf.columns[:6]) == ["system", "dataset", "file", "metric", "value", "reason"]
    assert len(pf) == 3 * 5 * len(METRICS)  # systems × files × metrics, bad file included
    assert set(pf["metric"]) == set(METRICS)


def test_bad_file_gives_nan_rows_with_reason_and_the_rest_is_intact(result, folders) -> None:
    pf = result.per_file
    bad = pf[pf["file"] == "broken"]
    assert len(bad) == 3 * len(METRICS)
    assert bad["value"].isna().all() and bad["reason"].str.contains("error loading broken").all()
    good = pf[pf["file"] != "broken"]
    assert good["value"].notna().all() and (good["reason"] == "").all()
    _, audio = folders
    for fid, (clean, noisy) in audio.items():  # the noisy system's rows are exactly the direct scores
        rows = good[(good["system"] == "noisy") & (good["file"] == fid)].set_index("metric")["value"]
        assert rows.to_dict() == pytest.approx(score(clean, noisy, SR, METRICS), rel=1e-9)


def test_summary_has_means_cis_and_counts(result) -> None:
    s = result.summary
    assert list(s.columns) == ["system", "dataset", "domain", "metric", "mean", "ci_low", "ci_high", "n_files", "n_nan"]
    assert (s["n_files"] == 4).all() and (s["n_nan"] == 1).all()
    assert (s["domain"] == "out-of-domain").all()
    pf = result.per_file
    for _, row in s.iterrows():
        vals = pf[(pf.system == row.system) & (pf.metric == row.metric)]["value"].dropna()
        assert row["mean"] == pytest.approx(vals.mean())
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]


def test_outputs_are_written_and_reload(result) -> None:
    from mal.metrics.cache import ScoreCache

    out = result.out_dir
    assert len(ScoreCache(out / "metric_cache.sqlite")) == 3 * 4 * len(METRICS)  # every good (system, file, metric)
    for name in ("per_file.csv", "summary.csv", "config.yaml"):
        assert (out / name).is_file()
    back = load_result(out)
    pd.testing.assert_frame_equal(back.summary, result.summary, check_dtype=False)
    assert back.per_file["reason"].eq(result.per_file["reason"]).all()
    assert EvalConfig.load(out / "config.yaml").metrics == METRICS
    examples = sorted(p.relative_to(out / "audio" / "toy").as_posix() for p in (out / "audio").rglob("*.wav"))
    assert examples == sorted(
        f"{s}/utt0.wav" for s in ("_clean", "_noisy", "noisy", "spectral-gating", "specmask-untrained")
    )


def test_paired_difference(result) -> None:
    pf = result.per_file
    same = paired_difference(pf, "noisy", "noisy", "si_sdr")
    assert same["mean_diff"] == 0.0 and same["n_files"] == 4
    d = paired_difference(pf, "spectral-gating", "noisy", "si_sdr", dataset="toy", n_boot=500, seed=3)
    a = pf[(pf.system == "spectral-gating") & (pf.metric == "si_sdr")].set_index("file")["value"]
    b = pf[(pf.system == "noisy") & (pf.metric == "si_sdr")].set_index("file")["value"]
    assert d["mean_diff"] == pytest.approx((a - b).dropna().mean())
    assert d["ci_low"] <= d["mean_diff"] <= d["ci_high"] and d["n_files"] == 4
    assert d == paired_difference(pf, "spectral-gating", "noisy", "si_sdr", dataset="toy", n_boot=500, seed=3)
    with pytest.raises(KeyError, match="nope"):
        paired_difference(pf, "nope", "noisy", "si_sdr")
    table = improvement_table(pf, baseline="noisy", metrics=["pesq_wb", "si_sdr"])
    assert set(table["system_a"]) == {"spectral-gating", "specmask-untrained"} and len(table) == 4


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="need a checkpoint path"):
        EvalConfig.from_params(dict(checkpoints={"x": ""}))
    with pytest.raises(ConfigError, match="unique"):
        EvalConfig.from_params(dict(checkpoints={"noisy": "a.pt"}))
    with pytest.raises(ConfigError, match="unknown metric"):
        EvalConfig.from_params(dict(metrics=["pesq"]))
    with pytest.raises(ConfigError, match="baselines"):
        EvalConfig.from_params(dict(baselines=["wiener"]))


def test_dataset_locations_resolve_to_loaders() -> None:
    cfg = EvalConfig.from_params(
        dict(data_root="c", datasets={"in": "test", "ood": "folders:/x/y", "vbd": "voicebank-demand:/d:test"})
    )
    assert cfg.dataset_specs() == [
        DatasetSpec("in", "mal-offline", "c", "test"),
        DatasetSpec("ood", "folders", "/x/y", ""),
        DatasetSpec("vbd", "voicebank-demand", "/d", "test"),
    ]
    assert [s.name for s in cfg.system_specs()] == ["noisy", "spectral-gating", "oracle-mask"]


def test_cli(folders, tmp_path, capsys) -> None:
    root, _ = folders
    out = tmp_path / "cli"
    with pytest.warns(UserWarning, match="could not be loaded"):  # 'broken' is among the first two files
        code = main(
            [
                "evaluate",
                "--dataset",
                f"toy=folders:{root}",
                "--metrics",
                "si_sdr",
                "--out",
                str(out),
                "--max-files",
                "2",
            ]
        )
    assert code == 1  # like mal enhance: every table is written, each failure is reported, the exit status says so
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["system"]) == {"noisy", "spectral-gating", "oracle-mask"}
    assert (summary["n_files"] + summary["n_nan"] == 2).all()
    captured = capsys.readouterr()
    assert "si_sdr" in captured.out
    assert "toy/broken (noisy): error loading broken" in captured.err and "1 file(s) failed" in captured.err


def test_figures_and_listening_widget(result) -> None:
    import matplotlib.pyplot as plt

    from mal.plots.evaluation import listening_widget, plot_distributions, plot_paired_differences, plot_snr_curves

    fig = plot_distributions(result.per_file, ["pesq_wb", "si_sdr"], kind="box")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2  # 2 metrics × 1 dataset
    plt.close(fig)
    fig = plot_paired_differences(improvement_table(result.per_file, "noisy", ["si_sdr"], n_boot=200))
    assert fig.axes[0].get_title() == "Δ SI-SDR (dB)"
    plt.close(fig)
    with pytest.raises(ValueError, match="snr_db"):  # the 'folders' layout records no SNR
        plot_snr_curves(result.per_file, ["si_sdr"])
    widget = listening_widget(result.out_dir)
    picker = widget.children[0].children
    assert picker[0].value == "toy" and list(picker[1].options) == ["utt0"]


def test_oracle_mask_row_is_the_ceiling(folders, tmp_path) -> None:
    """The oracle row reads the clean reference: on every file it beats the noisy input by a wide margin."""
    root, _ = folders
    res = evaluate(
        {"toy": f"folders:{root}"},
        metrics=["si_sdr"],
        out_dir=tmp_path,
        progress=False,
        max_files=3,
        baselines=["noisy", "oracle-mask"],
    )
    pf = res.per_file.dropna(subset=["value"]).pivot(index="file", columns="system", values="value")
    assert len(pf) >= 2 and (pf["oracle-mask"] > pf["noisy"] + 3.0).all()


def test_a_diverged_checkpoint_fails_its_rows_naming_it_and_writes_no_audio(
    folders, diverged_checkpoint, tmp_path
) -> None:
    root, _ = folders
    with pytest.warns(UserWarning, match="could not be loaded, enhanced or scored"):
        res = evaluate(
            {"toy": f"folders:{root}"},
            {"div": str(diverged_checkpoint)},
            ["si_sdr"],
            out_dir=tmp_path,
            progress=False,
            audio_examples=-1,
            baselines=["noisy"],
        )
    rows = res.per_file[(res.per_file["system"] == "div") & (res.per_file["file"] != "broken")]
    assert len(rows) == 4 and rows["value"].isna().all()
    assert rows["reason"].str.contains(f"ModelDivergedError: {diverged_checkpoint}: model diverged", regex=False).all()
    assert not (tmp_path / "audio" / "toy" / "div").exists() and (tmp_path / "audio" / "toy" / "noisy").is_dir()


def test_cli_refuses_a_checkpoint_that_runs_code(folders, malicious_checkpoint, tmp_path, capsys) -> None:
    root, _ = folders
    path, marker = malicious_checkpoint
    args = ["evaluate", "--dataset", f"toy=folders:{root}", "--checkpoint", f"evil={path}", "--out", str(tmp_path)]
    assert main([*args, "--metrics", "si_sdr", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert f"{path}: refused to load this checkpoint" in captured.err and captured.out == ""
    assert not marker.exists() and not (tmp_path / "per_file.csv").exists()
