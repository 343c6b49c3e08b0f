"""Runners other than the DirectRunner, for real where this machine allows.

* The portable path (what Flink and Spark run for Python stages): PortableRunner with
  the embedded job service and an EXTERNAL pool of SDK worker processes this test
  starts on 127.0.0.1 — pickling, no driver state, models loaded per worker process.
  The committed tables must equal a DirectRunner run's, row for row, on a local root
  and on an S3-protocol server.
* Dataflow: Beam's `--dry_run=True` builds the job without submitting it (no cloud
  call); the ASR step, and only it, carries the accelerator hint, the options are the
  documented ones, and nothing is committed.
* One precedence rule for runner options.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from speechmill.cli import main
from speechmill.config import Config, load_config
from speechmill.errors import ConfigError, DryRun
from speechmill.pipelines.corpus import run_corpus
from speechmill.pipelines.runs import effective_runner, pipeline_options, show_progress
from speechmill.pipelines.synth import run_synth
from speechmill.store import Store
from tests.fakes import FakeFactory
from tests.pipeline.test_faults import assert_same, history, work
from tests.s3_server import CREDENTIALS, S3, s3, s3_server

__all__ = ["s3", "s3_server", "work"]

REPO = Path(__file__).parents[2]
GPU_HINT = "type:nvidia-l4;count:1;install-nvidia-driver"
DATAFLOW = [
    "--dry_run=True",
    "--project=my-project",
    "--region=us-central1",
    "--temp_location=gs://my-bucket/tmp",
    "--sdk_container_image=us-docker.pkg.dev/my-project/speechmill/worker:1",
    "--experiments=use_runner_v2",
]


def config(work: Path, root: Path | str, extra: str = "", options: str = "{}") -> Config:
    return load_config(
        text=f"""
store: {{root: {root}, options: {options}}}
sources: [{{kind: local, name: talks, paths: [{work / "in"}], language: en}}]
asr: {{beam_size: 5, n_best: 3, batch_size: 2}}
runner: {{commit_every: 2}}
synth:
  texts: [{{kind: text, path: {work / "texts.txt"}, name: lines}}]
  voices: [{{engine: piper}}]  # byte-reproducible with zero noise scales
  noise_scale: {{low: 0, high: 0}}
  noise_w_scale: {{low: 0, high: 0}}
  augment: {{noise_p: 0.5, reverb_p: 0.3, speed_p: 0, telephone_p: 0, codec_p: 0, masking_p: 0}}
{extra}
"""
    )


# ----------------------------------------------------------------- the portable path


@pytest.fixture(scope="module")
def worker_pool() -> Iterator[str]:
    """SDK worker processes (Beam's worker pool) on 127.0.0.1, as a Flink/Spark node runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),  # the workers unpickle tests.fakes
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # workers start `python`
        **CREDENTIALS,  # a node's own credential chain (keys never travel with the job)
    }
    pool = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apache_beam.runners.worker.worker_pool_main",
            f"--service_port={port}",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or pool.poll() is not None:
                    raise RuntimeError("the worker pool did not start") from None
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        pool.terminate()
        pool.wait(timeout=30)


def portable(pool: str) -> list[str]:
    return [
        "--runner=PortableRunner",
        "--job_endpoint=embed",
        "--environment_type=EXTERNAL",
        f"--environment_config={pool}",
    ]


def test_corpus_and_synth_on_the_portable_runner_equal_the_direct_runner(
    work: Path, tmp_path: Path, worker_pool: str
) -> None:
    for name, run in (
        ("corpus", lambda c, a: run_corpus(c, factory=FakeFactory(), progress=False, beam_args=a)),
        ("synth", lambda c, a: run_synth(c, asr=FakeFactory(), progress=False, beam_args=a)),
    ):
        direct, ported = tmp_path / f"{name}-direct", tmp_path / f"{name}-portable"
        run(config(work, direct), [])
        run(config(work, ported), portable(worker_pool))
        got, want = history(ported), history(direct)
        assert_same(got, want)
        assert sum(len(rows) for rows in want.values()) >= 4, name  # the runs did something


@pytest.mark.slow
def test_the_portable_runner_on_an_s3_root(
    work: Path, tmp_path: Path, worker_pool: str, s3: S3
) -> None:
    root = s3.root("portable")
    direct = tmp_path / "direct"
    run_corpus(config(work, direct), factory=FakeFactory(), progress=False)
    cfg = config(work, root, options=s3.options_yaml)
    run_corpus(cfg, factory=FakeFactory(), progress=False, beam_args=portable(worker_pool))
    assert_same(history(root, s3.options), history(direct))


# ------------------------------------------------------------------ Dataflow, dry run


def test_a_dataflow_dry_run_builds_the_job_with_the_gpu_on_the_asr_step(
    work: Path, tmp_path: Path
) -> None:
    root = tmp_path / "dry"
    hints = (
        f"asr: {{resource_hints: {{accelerator: '{GPU_HINT}'}}}}\nrunner: {{name: DataflowRunner}}"
    )
    cfg = config(work, root, hints)
    for name, run in (
        (
            "corpus",
            lambda: run_corpus(cfg, factory=FakeFactory(), progress=False, beam_args=DATAFLOW),
        ),
        ("synth", lambda: run_synth(cfg, asr=FakeFactory(), progress=False, beam_args=DATAFLOW)),
    ):
        with pytest.raises(DryRun) as caught:
            run()
        steps = caught.value.hinted_steps()
        assert steps, name
        for step, hint in steps:  # the hint sits on the ASR step (RunInference) only
            assert "/RunInference/" in step and hint == {"accelerator": GPU_HINT}, (name, step)
        transforms = caught.value.job.proto_pipeline.components.transforms.values()
        assert any(t.unique_name.endswith("/ToAsrWorkers") for t in transforms), name
        opts = caught.value.job.options.get_all_options()
        assert opts["sdk_container_image"] == DATAFLOW[4].split("=", 1)[1]
        assert "use_runner_v2" in opts["experiments"]
        assert opts["project"] == "my-project" and opts["region"] == "us-central1"
    assert Store(str(root)).markers() == []  # a dry run commits nothing


def test_the_cli_dry_run_prints_the_hinted_steps_and_commits_nothing(
    work: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        f"store: {{root: {tmp_path / 'ds'}}}\n"
        f"sources: [{{kind: local, name: talks, paths: [{work / 'in'}]}}]\n"
        f"asr: {{resource_hints: {{accelerator: '{GPU_HINT}'}}}}\n",
        encoding="utf-8",
    )
    assert main(["run", str(cfg), "--runner", "DataflowRunner", "--", *DATAFLOW]) == 0
    out = capsys.readouterr().out
    assert "dry run on DataflowRunner" in out and "nothing committed" in out
    assert f"RunInference/BeamML_RunInference: accelerator={GPU_HINT}" in out
    assert Store(str(tmp_path / "ds")).markers() == []


def test_a_dry_run_on_a_runner_that_would_run_it_is_refused(work: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DataflowRunner only"):
        run_corpus(
            config(work, tmp_path / "x"), factory=FakeFactory(), beam_args=["--dry_run=True"]
        )
    assert Store(str(tmp_path / "x")).markers() == []


# ------------------------------------------------------------------ option precedence


def test_flags_after_the_double_dash_win_over_runner_and_config(work: Path) -> None:
    cfg = config(
        work, "/tmp/unused", "runner: {name: PortableRunner, options: {job_endpoint: embed}}"
    )
    assert effective_runner(cfg) == "PortableRunner"
    opts = pipeline_options(cfg, ["--runner=DataflowRunner", "--job_endpoint=localhost:8099"])
    got = opts.get_all_options()
    assert got["runner"] == "DataflowRunner" and got["job_endpoint"] == "localhost:8099"
    assert effective_runner(cfg, ["--runner", "FlinkRunner"]) == "FlinkRunner"
    # the config applies where no flag says otherwise
    assert pipeline_options(cfg).get_all_options()["job_endpoint"] == "embed"


def test_direct_options_reach_only_the_direct_runner(work: Path) -> None:
    cfg = config(work, "/tmp/unused", "runner: {direct_num_workers: 3}")
    assert pipeline_options(cfg).get_all_options()["direct_num_workers"] == 3
    other = pipeline_options(cfg, ["--runner=PortableRunner"]).get_all_options()
    assert other["direct_num_workers"] != 3
    assert show_progress(cfg, None) and not show_progress(cfg, None, ["--runner=FlinkRunner"])


def test_every_pipeline_command_takes_the_runner_option() -> None:
    from speechmill.cli import build_parser

    parser = build_parser()
    for cmd in (
        ["run"],
        ["refresh"],
        ["refine"],
        ["relabel", "--teacher", "t", "--round", "1"],
        ["nst", "--rounds", "1", "--train-cmd", "x"],
        ["synth"],
    ):
        args = parser.parse_args([cmd[0], "c.yaml", *cmd[1:], "--runner", "PortableRunner"])
        assert args.runner == "PortableRunner", cmd


# ------------------------------------------------------------------ the GPU path


def test_auto_device_and_batching_follow_the_hardware_and_the_hints() -> None:
    from speechmill.backends.devices import cuda_devices, resolve_compute_type, resolve_device
    from speechmill.config import AsrConfig
    from speechmill.transforms.asr import Batching

    here = "cuda" if cuda_devices() else "cpu"
    assert resolve_device("auto") == here
    assert resolve_compute_type("auto", "cpu") == "int8"
    assert resolve_compute_type("auto", "cuda") == "float16"
    assert resolve_compute_type("int8_float16", "cuda") == "int8_float16"
    cpu = Batching.from_config(AsrConfig(device="cpu"))
    assert (cpu.size, cpu.buckets_s, cpu.model_copies) == (8, (), None)
    gpu = Batching.from_config(AsrConfig(device="auto", resource_hints={"accelerator": GPU_HINT}))
    assert (gpu.size, gpu.buckets_s, gpu.model_copies) == (16, (5.0, 10.0, 20.0), 1)
    assert "length_fn" in gpu.kwargs() and "length_fn" not in cpu.kwargs()
    with pytest.raises(ValueError, match="unknown resource hints"):
        AsrConfig(resource_hints={"gpu": "yes"})


@pytest.mark.gpu
def test_cuda_decodes_the_words_the_cpu_decodes() -> None:
    import numpy as np

    from speechmill.backends.asr import decode_with_retry
    from speechmill.backends.devices import cuda_devices
    from speechmill.backends.faster_whisper import FasterWhisperBackend
    from speechmill.core.asr.decoding import AsrItem, DecodeOptions
    from speechmill.core.text.normalize import get_normalizer
    from tests.audio_fixtures import speech_clip

    if not cuda_devices():
        pytest.skip("CTranslate2 sees no CUDA device here")
    items = [AsrItem(f"s{k}", speech_clip(sentence=k), "en") for k in range(4)]
    opts, norm = DecodeOptions(beam_size=5, n_best=5), get_normalizer("whisper-english")
    texts = {}
    for device in ("cpu", "cuda"):
        be = FasterWhisperBackend.load("bundled:tiny.en", device, "auto")
        outs = decode_with_retry(be, items, opts, norm)
        assert all(o.error is None for o in outs), [o.error for o in outs]
        texts[device] = [norm(o.nbest.hyps[0].text) for o in outs if o.nbest]
    assert np.mean([a == b for a, b in zip(texts["cpu"], texts["cuda"], strict=True)]) >= 0.75
