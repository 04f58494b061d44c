"""The training loop on the builtin photos with a tiny model (size 64, depth 4, width 0.125)."""

from __future__ import annotations

import csv
import itertools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_gpu
from PIL import Image

from pconv.apps.cli import main as pconv_main
from pconv.errors import PconvError
from pconv.training.checkpoint import load_checkpoint, save_checkpoint
from pconv.training.train import TrainOptions, TrainResult, learning_rate, train
from pconv.training.unet import PConvUNet

TINY = {"size": 64, "depth": 4, "width": 0.125, "batch": 4}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models train fastest on one thread; more threads only spin on a busy 2-core CI box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def options(out: Path, **overrides: object) -> TrainOptions:
    kwargs: dict[str, object] = {
        **TINY,
        "out": str(out),
        "progress": False,
        "log_every": 1,
        "sample_every": 0,
        "seed": 0,
    }
    kwargs.update(overrides)
    return TrainOptions(**kwargs)  # type: ignore[arg-type]


def log_rows(run: Path) -> list[dict[str, str]]:
    with (run / "log.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """30 steps from scratch, shared by the tests below (about 5 s on 2 cores)."""
    out = tmp_path_factory.mktemp("train") / "base"
    return train(options(out, steps=30, sample_every=15, checkpoint_every=10))


def test_loss_falls_over_30_steps(base_run: TrainResult) -> None:
    totals = [row["total"] for row in base_run.history]
    assert base_run.steps == 30 and len(totals) == 30
    first, last = float(np.mean(totals[:5])), float(np.mean(totals[-5:]))
    assert last < 0.9 * first, (first, last)


def test_run_folder_contents(base_run: TrainResult) -> None:
    run = base_run.checkpoint.parent
    model = load_checkpoint(base_run.checkpoint)
    assert (model.config.depth, model.config.width) == (4, 0.125)
    rows = log_rows(run)
    assert [int(float(r["step"])) for r in rows] == list(range(1, 31))
    # The default cosine schedule: warm-up (capped at 10% of the run) to the paper's 2e-4, then decay.
    lrs = [float(r["lr"]) for r in rows]
    assert lrs == pytest.approx([learning_rate(s, 30, 2e-4, "cosine", 100) for s in range(30)])
    assert max(lrs) == pytest.approx(2e-4) and lrs[-1] < 0.05 * 2e-4
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert state["step"] == 30 and state["finetune"] is False
    grids = sorted((run / "samples").glob("*.png"))
    assert [g.name for g in grids] == ["step_0000015.png", "step_0000030.png"]
    with Image.open(grids[-1]) as grid:
        assert grid.size == (5 * 64, 4 * 64)  # input | mask | output | composite | GT, 4 rows


def test_resume_continues_at_the_exact_step(tmp_path: Path) -> None:
    # Constant lr: a 4-step run extended to 8 has the schedule of an 8-step run (a cosine decay is
    # planned for --steps, so extending a cosine run re-plans it).
    straight = train(options(tmp_path / "straight", steps=8, schedule="constant"))
    first = train(options(tmp_path / "split", steps=4, schedule="constant"))
    assert first.steps == 4
    resumed = train(options(tmp_path / "split", steps=8, resume=True, schedule="constant"))
    assert resumed.steps == 8
    assert [int(r["step"]) for r in resumed.history] == [5, 6, 7, 8]
    assert [int(float(r["step"])) for r in log_rows(tmp_path / "split")] == list(range(1, 9))
    # Same samples, same optimizer state: the resumed run follows the uninterrupted one.
    np.testing.assert_allclose(
        [r["total"] for r in resumed.history], [r["total"] for r in straight.history[4:]], rtol=1e-4
    )
    a = load_checkpoint(straight.checkpoint).state_dict()
    b = load_checkpoint(resumed.checkpoint).state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


def test_resume_keeps_the_runs_lr_and_refuses_other_data(tmp_path: Path) -> None:
    run = tmp_path / "lr"
    train(options(run, schedule="constant", steps=1, lr=1e-3, seed=4))
    with pytest.raises(PconvError, match=r"--size \(run: 64; now: 32\).*--seed \(run: 4; now: 0\)"):
        train(options(run, schedule="constant", steps=2, resume=True, size=32))
    with pytest.raises(PconvError, match=r"--hole-ratio \(run: 0.1,0.5; now: 0.2,0.3\)"):
        train(options(run, schedule="constant", steps=2, resume=True, seed=4, hole_ratio=(0.2, 0.3)))
    resumed = train(
        options(run, schedule="constant", steps=2, resume=True, seed=4)
    )  # no lr given: the run's 1e-3
    assert [r["lr"] for r in resumed.history] == [pytest.approx(1e-3)]
    again = train(
        options(run, schedule="constant", steps=3, resume=True, seed=4, lr=5e-4)
    )  # an explicit lr wins
    assert [r["lr"] for r in again.history] == [pytest.approx(5e-4)]
    # A run folder from before step folders (only the two top-level files) still resumes, and a torn
    # pair there (weights saved, then a crash before the state) is refused, not mixed.
    shutil.rmtree(run / "steps")
    save_checkpoint(load_checkpoint(again.checkpoint), again.checkpoint, metadata={"pconv_step": "9"})
    with pytest.raises(PconvError, match=r"at step 9 but train_state\.pt at step 3"):
        train(options(run, schedule="constant", steps=4, resume=True, seed=4))


def test_progress_bar_shows_every_active_loss_term(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    train(options(tmp_path / "log", steps=1, progress=True))
    assert "step/s" not in capsys.readouterr().err  # not a terminal (a log file, CI): no bar
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    train(options(tmp_path / "bar", steps=1, progress=True, random_init_vgg=True))
    err = capsys.readouterr().err
    for term in ("total=", "valid=", "hole=", "perceptual=", "style_out=", "style_comp=", "tv=", "step/s"):
        assert term in err, (term, err[-500:])


def test_finetune_freezes_encoder_batchnorm(base_run: TrainResult, tmp_path: Path) -> None:
    before = load_checkpoint(base_run.checkpoint)
    tuned = train(options(tmp_path / "ft", steps=3, finetune=str(base_run.checkpoint)))
    assert tuned.history[0]["lr"] == pytest.approx(5e-5)
    after = load_checkpoint(tuned.checkpoint)
    for spec in before.specs:
        bn_before = before.layers[spec.name].bn  # type: ignore[union-attr]
        bn_after = after.layers[spec.name].bn  # type: ignore[union-attr]
        if bn_before is None:
            continue
        same = all(
            torch.equal(getattr(bn_before, k), getattr(bn_after, k))
            for k in ("running_mean", "running_var", "weight", "bias")
        )
        assert same == (not spec.upsample_input), spec.name  # encoder frozen, decoder still trains
    state = torch.load(tmp_path / "ft" / "train_state.pt", weights_only=True)
    assert state["finetune"] is True
    with pytest.raises(PconvError, match="fine-tuning run"):
        train(options(tmp_path / "ft", steps=4, resume=True))  # forgot --finetune
    resumed = train(options(tmp_path / "ft", steps=4, resume=True, finetune=str(base_run.checkpoint)))
    assert resumed.steps == 4


def test_a_finetune_reads_its_source_checkpoint_once(
    base_run: TrainResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pconv.training.train as train_module

    reads: list[Path] = []

    def counting_load(path: Path, *args: object, **kwargs: object) -> PConvUNet:
        reads.append(Path(path))
        return load_checkpoint(path)

    monkeypatch.setattr(train_module, "load_checkpoint", counting_load)
    tuned = train(options(tmp_path / "once", steps=1, finetune=str(base_run.checkpoint)))
    assert reads == [base_run.checkpoint] and tuned.steps == 1


def test_freeze_encoder_bn_survives_train_mode() -> None:
    model = PConvUNet(depth=3, width=0.125)
    model.freeze_encoder_bn()
    model.train()
    for block in model.encoder_blocks():
        if block.bn is not None:
            assert not block.bn.training
            assert not any(p.requires_grad for p in block.bn.parameters())
    decoder_bns = [model.layers[s.name].bn for s in model.specs if s.upsample_input]
    assert any(bn is not None and bn.training for bn in decoder_bns)


def test_user_errors_are_pconv_errors(base_run: TrainResult, tmp_path: Path) -> None:
    with pytest.raises(PconvError, match="already holds a run"):
        train(options(base_run.checkpoint.parent, steps=31))
    with pytest.raises(PconvError, match="no run to resume"):
        train(options(tmp_path / "nothing", steps=3, resume=True))
    # train_state.pt is read with weights_only=True: a pickled object is refused, never run.
    evil = tmp_path / "evil"
    save_checkpoint(PConvUNet(depth=4, width=0.125), evil / "checkpoint.safetensors")
    torch.save({"step": 1, "payload": TrainOptions()}, evil / "train_state.pt")
    with pytest.raises(PconvError, match="cannot read"):
        train(options(evil, steps=3, resume=True))
    with pytest.raises(PconvError, match=r"2\^depth = 16"):
        train(options(tmp_path / "bad", size=72))
    with pytest.raises(PconvError, match="'gpu0' is not a device"):
        train(options(tmp_path / "dev", steps=1, device="gpu0"))
    with pytest.raises(PconvError, match="needs a CUDA device"):
        train(options(tmp_path / "amp", steps=1, amp="bf16", device="cpu"))
    with pytest.raises(PconvError, match="conflicts"):
        train(options(tmp_path / "ft2", steps=1, depth=5, finetune=str(base_run.checkpoint)))


def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    argv = ["train", "--size", "64", "--depth", "4", "--width", "0.125", "--batch", "2", "--steps", "3"]
    code = pconv_main([*argv, "--out", str(out), "--sample-every", "3", "--log-every", "1",
                       "--random-init-vgg", "--no-progress"])  # fmt: skip
    assert code == 0
    assert "trained to step 3" in capsys.readouterr().out
    assert load_checkpoint(out / "checkpoint.safetensors").config.depth == 4
    rows = log_rows(out)
    assert len(rows) == 3 and all(float(r["perceptual"]) > 0 and float(r["style_out"]) > 0 for r in rows)
    assert (out / "samples" / "step_0000003.png").is_file()

    bad = pconv_main(
        ["train", "--size", "60", "--depth", "4", "--out", str(tmp_path / "bad"), "--no-progress"]
    )
    assert bad == 2
    err = capsys.readouterr().err
    assert "2^depth" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1

    with pytest.raises(SystemExit):
        pconv_main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "(default: False)" not in text  # only real defaults
    assert "(default: 0.1,0.5)" in text and "(default: 64)" in text


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "pconv", "train", "--size", "64", "--depth", "4", "--width", "0.125", "--batch", "2",
        "--steps", "3", "--log-every", "1", "--out", str(out), "--no-progress", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert proc.stdout.count("trained to step 3") == 1  # only rank 0 reports and writes
    assert [int(float(r["step"])) for r in log_rows(out)] == [1, 2, 3]
    assert load_checkpoint(out / "checkpoint.safetensors").config.depth == 4


@requires_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_on_cuda(tmp_path: Path, amp: str) -> None:
    result = train(options(tmp_path / amp, steps=5, amp=amp, device="cuda", random_init_vgg=True))
    assert result.steps == 5
    assert all(np.isfinite(r["total"]) for r in result.history)


def test_learning_rate_schedules() -> None:
    """Constant stays put; cosine warms up linearly, peaks at --lr, ends at 1% of it, never rises after."""
    assert {learning_rate(s, 1000, 1e-3, "constant", 100) for s in range(1000)} == {1e-3}
    cosine = [learning_rate(s, 1000, 1e-3, "cosine", 100) for s in range(1000)]
    assert cosine[:100] == pytest.approx([1e-3 * (s + 1) / 100 for s in range(100)])
    assert max(cosine) == pytest.approx(1e-3)
    assert all(b <= a for a, b in itertools.pairwise(cosine[100:]))
    assert cosine[-1] == pytest.approx(1e-5, rel=0.01)
    # A run shorter than 10x the warm-up warms up for a tenth of its steps.
    assert learning_rate(9, 100, 1e-3, "cosine", 100) == pytest.approx(1e-3)


def test_bad_schedule_and_augment_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(PconvError, match="--schedule must be one of constant, cosine"):
        train(options(tmp_path / "a", steps=1, schedule="linear"))
    with pytest.raises(PconvError, match="--augment must be one of none, geometric, full"):
        train(options(tmp_path / "b", steps=1, augment="colour"))


def test_resuming_a_run_saved_before_augment_existed_needs_augment_none() -> None:
    from pconv.training.train import check_resume_options

    old_run = {"options": {"data": "builtin", "size": 64}}  # no "augment": such runs trained without it
    check_resume_options(TrainOptions(size=64, augment="none"), old_run)
    with pytest.raises(PconvError, match=r"--augment \(run: none; now: full\)"):
        check_resume_options(TrainOptions(size=64, augment="full"), old_run)


# -- surviving interruptions (issue 12) ------------------------------------------------------------
def test_sigint_saves_a_resumable_checkpoint_at_the_current_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pconv.training.train as train_module
    from pconv.training.train import TrainingInterrupted

    real = train_module.append_log

    def log_then_ctrl_c(run: Path, row: dict[str, float]) -> None:
        real(run, row)
        if row["step"] == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C during step 3

    monkeypatch.setattr(train_module, "append_log", log_then_ctrl_c)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match=r"SIGINT at step 3: saved a resumable checkpoint"):
        train(options(run, steps=10, checkpoint_every=100, schedule="constant"))
    assert torch.load(run / "train_state.pt", weights_only=True)["step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    monkeypatch.setattr(train_module, "append_log", real)
    resumed = train(options(run, steps=5, resume=True, schedule="constant"))
    assert [int(r["step"]) for r in resumed.history] == [4, 5]


def test_a_crash_between_weights_and_state_leaves_the_previous_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pconv.training.train as train_module

    run = tmp_path / "run"
    train(options(run, steps=2, checkpoint_every=1, schedule="constant"))
    assert sorted(p.name for p in (run / "steps").iterdir()) == ["LATEST", "step_0000001", "step_0000002"]

    def crash(state: object, path: object) -> None:
        raise OSError(28, "No space left on device")  # the state write fails after the weights were written

    monkeypatch.setattr(train_module.torch, "save", crash)
    with pytest.raises(OSError):
        train(options(run, steps=3, resume=True, schedule="constant"))
    monkeypatch.undo()
    assert not any(p.name.endswith(".tmp") for p in (run / "steps").iterdir())  # nothing half-written
    resumed = train(options(run, steps=3, resume=True, schedule="constant"))  # from step 2's pair
    assert [int(r["step"]) for r in resumed.history] == [3]
    assert load_checkpoint(run / "checkpoint.safetensors").state_dict().keys()
    assert sorted(p.name for p in (run / "steps").iterdir()) == ["LATEST", "step_0000002", "step_0000003"]


def test_resume_compares_resolved_folders_and_refuses_fewer_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(0)
    for where in ("a/imgs", "b/imgs"):
        (tmp_path / where).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
                tmp_path / where / f"{i}.png"
            )
    monkeypatch.chdir(tmp_path / "a")
    run = tmp_path / "run"
    train(options(run, steps=1, data="./imgs/", schedule="constant"))
    saved = torch.load(run / "train_state.pt", weights_only=True)["options"]["data"]
    assert saved == str((tmp_path / "a" / "imgs").resolve())  # recorded resolved
    train(options(run, steps=2, resume=True, data=str(tmp_path / "a" / "imgs"), schedule="constant"))
    monkeypatch.chdir(tmp_path / "b")  # the same string from another folder is other data
    with pytest.raises(PconvError, match=r"--data \(run: .*a/imgs; now: .*b/imgs\)"):
        train(options(run, steps=3, resume=True, data="imgs", schedule="constant"))
    with pytest.raises(PconvError, match=r"already at step 2, beyond --steps 1"):
        train(options(run, steps=1, resume=True, data=str(tmp_path / "a" / "imgs"), schedule="constant"))


@pytest.mark.parametrize(("sig", "workers"), [(signal.SIGTERM, "0"), (signal.SIGINT, "1")])
def test_a_stop_signal_to_the_cli_saves_and_exits_130(tmp_path: Path, sig: int, workers: str) -> None:
    """SIGTERM to the trainer; Ctrl-C to the whole process group (as a terminal does), workers included."""
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "pconv", "train", "--size", "32", "--depth", "3", "--width", "0.125",
           "--batch", "1", "--steps", "100000", "--log-every", "1", "--checkpoint-every", "0",
           "--sample-every", "0", "--threads", "1", "--no-progress", "--out", str(run),
           "--workers", workers]  # fmt: skip
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        (run / "log.csv").is_file() and len((run / "log.csv").read_text().splitlines()) > 2
    ):
        time.sleep(0.2)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert (
        f"{signal.Signals(sig).name} at step" in err
        and "saved a resumable checkpoint" in err
        and "Traceback" not in err
    )
    step = torch.load(run / "train_state.pt", weights_only=True)["step"]
    assert step >= 2 and f"at step {step}:" in err


def test_mask_threshold_is_part_of_a_file_mask_run(tmp_path: Path) -> None:
    from pconv.training.train import check_resume_options

    old_run = {"options": {"masks": str(tmp_path)}}  # saved before --mask-threshold: files were cut at 0.6
    with pytest.raises(
        PconvError, match=r"differ from the run being resumed: --mask-threshold \(run: 0.6; now: 0.5\)\."
    ):
        check_resume_options(TrainOptions(masks=str(tmp_path), augment="none"), old_run)
    check_resume_options(TrainOptions(masks=str(tmp_path), mask_threshold=0.6, augment="none"), old_run)
    # Generated masks are binary: the threshold is not compared for them.
    check_resume_options(TrainOptions(augment="none"), {"options": {"masks": "procedural"}})
