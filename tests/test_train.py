"""`curate.train` in TRL's own style: a real tiny model (`curate.toy`), real exports, the
real SFTTrainer and GRPOTrainer, a few steps each; parameters change, the loss goes down,
the schedule, resume and the metrics are checked, and bad input is refused up front."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest

pytest.importorskip("trl")

import curate
from curate.errors import ConfigError, InputError
from curate.sql import folder_tables, query
from curate.toy import toy_problems
from curate.train import GRPOPreset, LengthStage, TrainingError, grpo, preset, sft
from curate.train import session as train_session

FAST = {"threads": 1, "progress": False}
SFT_TOY = {"global_batch": 8, "micro_batch": 8, "max_length": 96, "learning_rate": 1e-3}
GRPO_TOY: dict[str, Any] = {
    "stages": [(32, 4, 2)],
    "prompts_per_step": 2,
    "updates_per_step": 1,
    "micro_batch": 8,
    "learning_rate": 1e-3,
}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory: pytest.TempPathFactory) -> curate.Run:
    d = tmp_path_factory.mktemp("train-run")
    rows = toy_problems(48, seed=11, levels=[1])
    (d / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return curate.Recipe("toy", [curate.read(d / "p.jsonl", source="toy")]).run(
        d / "run", progress=False
    )


@pytest.fixture(scope="module")
def exports(toy_run: curate.Run, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("exports")
    out = {}
    for fmt in ("sft", "trl", "rl", "verl"):
        options: dict[str, Any] = {"template": "{problem}"}
        if fmt in ("sft", "trl"):
            options["completions"] = "solutions"
        curate.export_run(toy_run, d / fmt, format=fmt, **options)  # type: ignore[arg-type]
        out[fmt] = d / fmt
    return out


def _weights(folder: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _changed(before: Path, after: Path) -> bool:
    a, b = _weights(before), _weights(after)
    return any(not a[k].equal(b[k]) for k in a if k in b)


def test_presets_hold_the_papers_values() -> None:
    s1, s2 = preset("deepdistill-stage1"), preset("deepdistill-stage2")
    assert (s1.learning_rate, s1.epochs, s1.packing, s1.global_batch) == (8e-5, 1, True, 64)
    assert (s1.scheduler, s1.warmup_ratio, s1.min_lr_ratio, s1.max_length) == (
        "cosine",
        0.05,
        0.0,
        32768,
    )
    assert (s2.learning_rate, s2.epochs, s2.packing) == (8e-6, 2, False)
    ds = preset("deepscaler")
    assert isinstance(ds, GRPOPreset)
    assert [(s.max_completion_length, s.num_generations) for s in ds.stages] == [
        (8192, 8),
        (16384, 16),
        (24576, 16),
    ]
    assert [sum(s.steps for s in ds.stages[:i]) for i in (1, 2)] == [1040, 1520]
    assert (ds.learning_rate, ds.prompts_per_step, ds.beta, ds.temperature) == (
        1e-6,
        128,
        1e-3,
        0.6,
    )
    dsm = preset("deepseekmath")
    assert isinstance(dsm, GRPOPreset)
    assert (dsm.beta, dsm.stages[0].num_generations, dsm.stages[0].max_completion_length) == (
        0.04,
        64,
        1024,
    )
    assert (dsm.loss_type, dsm.scale_rewards, dsm.ref_reset_steps is not None) == (
        "grpo",
        "group",
        True,
    )
    dr = preset("dr_grpo")
    assert isinstance(dr, GRPOPreset)
    assert (dr.loss_type, dr.scale_rewards, dr.beta) == ("dr_grpo", "none", 0.0)
    dapo = preset("dapo")
    assert isinstance(dapo, GRPOPreset)
    assert (dapo.epsilon, dapo.epsilon_high, "overlong" in dapo.rewards) == (0.2, 0.28, True)


def test_bad_presets_and_options_are_refused(exports: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown preset 'ppo'"):
        preset("ppo")
    with pytest.raises(ConfigError, match="not a grpo preset"):
        grpo(exports["rl"], "m", tmp_path / "o", preset="deepdistill-stage1")
    with pytest.raises(ConfigError, match="unknown option"):
        sft(exports["sft"], "m", tmp_path / "o", learning_rat=1e-3)
    with pytest.raises(ConfigError, match="at least 2"):
        LengthStage(128, 1, 10)
    with pytest.raises(ConfigError, match="multiple of"):
        sft(exports["sft"], "m", tmp_path / "o", global_batch=10, micro_batch=4)


def test_sft_trains_on_an_sft_export(
    exports: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sft"
    # the Stage I preset packs; on a CPU there is no kernel that keeps packed sequences apart
    with pytest.warns(RuntimeWarning, match="training without packing"):
        result = sft(exports["sft"], toy_dir, out, max_steps=6, seed=0, **SFT_TOY, **FAST)
    assert result.steps == 6 and not result.skipped
    assert _changed(toy_dir, result.model)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(result.model)
    assert AutoTokenizer.from_pretrained(result.model).chat_template
    metrics = result.metrics()
    assert metrics["step"].to_list() == [1, 2, 3, 4, 5, 6]
    losses = metrics["loss"].to_list()
    assert sum(losses[-2:]) < sum(losses[:2])  # the loss goes down
    assert metrics["stage"].unique().to_list() == ["deepdistill-stage1"]
    # the learning rate: 5% linear warm-up, then cosine towards 0
    lrs = metrics["learning_rate"].to_list()
    assert lrs[0] == 0.0 and max(lrs) <= 1e-3 and lrs[-1] < max(lrs)
    # the metrics are a table curate sql reads
    top = query(folder_tables(out), "SELECT max(step) AS s FROM metrics").item()
    assert top == 6
    state = json.loads((out / "train.json").read_text())
    assert state["status"] == "done" and state["preset"]["learning_rate"] == 1e-3
    assert state["data"]["format"] == "sft" and state["packed"] is False
    assert json.loads((result.model / "config.json").read_text())["use_cache"] is True
    # the same call again: nothing to do; other settings: refused
    again = sft(exports["sft"], toy_dir, out, max_steps=6, seed=0, **SFT_TOY, **FAST)
    assert again.skipped and again.steps == 6
    with pytest.raises(ConfigError, match="other settings"):
        sft(exports["sft"], toy_dir, out, max_steps=7, seed=0, **SFT_TOY, **FAST)


def test_sft_reads_trl_and_the_shards_unchanged(
    exports: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    from curate.train import data as train_data

    for fmt in ("sft", "trl"):
        resolved = train_data.resolve(exports[fmt], "sft", tmp_path)
        rows = sum(pq.read_metadata(p).num_rows for p in resolved.train_files)
        assert len(train_data.load(resolved, "sft")) == rows
    result = sft(exports["trl"], toy_dir, tmp_path / "trl", max_steps=2, **SFT_TOY, **FAST)
    assert result.steps == 2 and _changed(toy_dir, result.model)


def test_sft_resumes_from_its_last_checkpoint(
    exports: dict[str, Path], toy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import TrainerCallback

    class Crash(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step == 3:
                raise KeyboardInterrupt("interrupted")

    real = train_session.callbacks
    monkeypatch.setattr(train_session, "callbacks", lambda *a: [*real(*a), Crash()], raising=True)
    out = tmp_path / "resume"
    options = {"max_steps": 4, "save_steps": 2, **SFT_TOY, **FAST}
    with pytest.raises(KeyboardInterrupt):
        sft(exports["sft"], toy_dir, out, **options)
    assert train_session.last_checkpoint(out) == out / "checkpoint-2"
    monkeypatch.setattr(train_session, "callbacks", real)
    result = sft(exports["sft"], toy_dir, out, **options)
    assert result.resumed and result.steps == 4
    assert result.metrics()["step"].to_list() == [1, 2, 3, 4]  # step 3 logged once


def test_grpo_trains_with_curates_reward_over_two_lengthening_stages(
    exports: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grpo"
    options = {**GRPO_TOY, "stages": [(32, 4, 2), (40, 8, 1)]}
    result = grpo(exports["rl"], toy_dir, out, preset="deepscaler", seed=0, **options, **FAST)
    assert result.steps == 3 and _changed(toy_dir, result.model)
    metrics = result.metrics()
    assert metrics["stage"].to_list() == ["deepscaler-1", "deepscaler-1", "deepscaler-2"]
    for column in ("reward", "groups_all_equal", "truncated", "kl", "rewards_accuracy_reward_mean"):
        assert column in metrics.columns, column
    assert metrics["reward"].is_between(0, 1).all()
    assert (out / "checkpoint-2").is_dir() and (out / "checkpoint-3").is_dir()
    # stage 2 resumed from stage 1's checkpoint with its own settings
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    args = json.loads((out / "train.json").read_text())["preset"]
    assert [s["num_generations"] for s in args["stages"]] == [4, 8]


def test_grpo_reads_verl_and_trl_exports(
    exports: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    from curate.train import data as train_data

    verl = train_data.load(train_data.resolve(exports["verl"], "grpo", tmp_path), "grpo")
    assert verl[0]["answer"] == verl[0]["reward_model"]["ground_truth"]
    trl = train_data.load(train_data.resolve(exports["trl"], "grpo", tmp_path), "grpo")
    assert len(set(trl["problem_id"])) == len(trl) and "completion" not in trl.column_names
    result = grpo(exports["verl"], toy_dir, tmp_path / "verl", max_steps=1, **GRPO_TOY, **FAST)
    assert result.steps == 1 and "reward" in result.metrics().columns


def test_grpo_from_a_run_directory_exports_it_first(
    toy_run: curate.Run, toy_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fromrun"
    result = grpo(toy_run.path, toy_dir, out, max_steps=1, **GRPO_TOY, **FAST)
    assert (out / "data" / "export.json").exists() and result.steps == 1
    assert json.loads((out / "data" / "export.json").read_text())["format"] == "rl"


def test_grpo_refuses_prompts_without_a_gold_answer(
    exports: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(exports["rl"], broken)
    shard = next((broken / "data").glob("train-*.parquet"))
    frame = pl.read_parquet(shard)
    frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(None).otherwise(pl.col("answer")).alias("answer")
    ).write_parquet(shard)
    with pytest.raises(InputError, match="no gold answer") as info:
        grpo(broken, toy_dir, tmp_path / "o", max_steps=1, **GRPO_TOY, **FAST)
    assert info.value.row == 3 and info.value.field == "answer" and info.value.path == str(shard)
    with pytest.raises(ConfigError, match="is a 'sft' export"):
        grpo(exports["sft"], toy_dir, tmp_path / "o2", max_steps=1, **GRPO_TOY, **FAST)


def test_a_model_without_a_chat_template_is_refused(
    exports: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    base = tmp_path / "base-model"
    shutil.copytree(toy_dir, base)
    (base / "chat_template.jinja").unlink()
    with pytest.raises(ConfigError, match="no chat template"):
        grpo(exports["rl"], base, tmp_path / "o", max_steps=1, **GRPO_TOY, **FAST)
    with pytest.raises(ConfigError, match="no chat template"):
        sft(exports["sft"], base, tmp_path / "o", max_steps=1, **SFT_TOY, **FAST)
    # SFT of a base model with a template given
    template = tmp_path / "chatml.jinja"
    shutil.copy(toy_dir / "chat_template.jinja", template)
    result = sft(
        exports["sft"], base, tmp_path / "o3", max_steps=1, chat_template=str(template),
        **SFT_TOY, **FAST,
    )  # fmt: skip
    assert result.steps == 1


def test_a_chat_template_that_drops_the_reasoning_is_refused(
    toy_run: curate.Run, toy_dir: Path, tmp_path: Path
) -> None:
    """DeepSeek-R1-distill templates cut assistant turns to what follows </think>."""
    data = tmp_path / "sft"
    curate.export_run(toy_run, data, format="sft", template="{problem}", completions="solutions")
    r1_like = tmp_path / "r1.jinja"
    r1_like.write_text(
        (toy_dir / "chat_template.jinja")
        .read_text()
        .replace("message['content']", "message['content'].split('</think>')[-1]")
    )
    with pytest.raises(ConfigError, match="drop the <think> part"):
        sft(data, toy_dir, tmp_path / "o", chat_template=str(r1_like), max_steps=1, **FAST)


def test_a_length_that_truncates_every_completion_stops_the_run(
    exports: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    options = {**GRPO_TOY, "stages": [(2, 4, 8)]}
    with (
        pytest.warns(RuntimeWarning, match="every completion was truncated"),
        pytest.raises(TrainingError, match="raise max_completion_length"),
    ):
        grpo(exports["rl"], toy_dir, tmp_path / "cut", **options, **FAST)
    # the steps it took are queryable all the same
    truncated = query(folder_tables(tmp_path / "cut"), "SELECT min(truncated) FROM metrics")
    assert truncated.item() == 1.0


def test_grpo_refuses_what_would_train_nothing_or_crash_in_trl(
    exports: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="fewer than one step's prompts_per_step=64"):
        grpo(exports["rl"], toy_dir, tmp_path / "a", **{**GRPO_TOY, "prompts_per_step": 64})
    with pytest.raises(ConfigError, match="not possible with LoRA"):
        grpo(exports["rl"], toy_dir, tmp_path / "b", preset="deepseekmath", lora=True)
    with pytest.raises(ConfigError, match=r"warmup_ratio=1\.5"):
        grpo(exports["rl"], toy_dir, tmp_path / "c", warmup_ratio=1.5)
    from curate.train.rl import _with_warmup

    assert _with_warmup("constant", 0.05) == "constant_with_warmup"
    assert _with_warmup("constant", 0.0) == "constant"


def test_grpo_updates_per_step_and_lora(
    exports: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    """Two optimizer updates per rollout (DeepScaleR's mini-batches), on a LoRA adapter
    that ends merged into the saved model."""
    options = {**GRPO_TOY, "stages": [(32, 4, 2)], "updates_per_step": 2, "micro_batch": 4}
    options |= {"prompts_per_step": 4, "temperature": 1.0}  # groups that differ: a gradient
    result = grpo(exports["rl"], toy_dir, tmp_path / "u", lora=True, **options, **FAST)
    assert result.steps == 4  # 2 rollouts x 2 updates
    assert result.metrics()["groups_all_equal"].min() < 1
    assert result.metrics()["step"].to_list() == [1, 2, 3, 4]
    assert not (result.model / "adapter_config.json").exists()
    assert _changed(toy_dir, result.model)


def test_changed_data_or_overwrite_is_never_taken_for_the_same_training(
    toy_run: curate.Run, exports: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "rl"
    curate.export_run(toy_run, data, format="rl", template="{problem}")
    out = tmp_path / "o"
    grpo(data, toy_dir, out, max_steps=1, **GRPO_TOY, **FAST)
    curate.export_run(toy_run, data, format="rl", template="Q: {problem}")  # same rows, new text
    with pytest.raises(ConfigError, match="other settings"):
        grpo(data, toy_dir, out, max_steps=1, **GRPO_TOY, **FAST)
    # overwrite from a run directory keeps the export it makes
    fresh = grpo(toy_run.path, toy_dir, out, max_steps=1, overwrite=True, **GRPO_TOY, **FAST)
    assert fresh.steps == 1 and (out / "data" / "export.json").exists()


def test_cli_train_sft_and_grpo(exports: dict[str, Path], toy_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from curate.cli import app

    runner = CliRunner()
    args = ["--model", str(toy_dir), "--max-steps", "1", "--threads", "1", "-q"]
    sets = ["--global-batch", "8", "--micro-batch", "8", "--set", "max_length=96"]
    res = runner.invoke(app, ["train", "sft", str(exports["sft"]), "-o", str(tmp_path / "s")])
    assert res.exit_code == 2  # --model missing
    res = runner.invoke(
        app, ["train", "sft", str(exports["sft"]), "-o", str(tmp_path / "s"), *args, *sets]
    )
    assert res.exit_code == 0, res.output
    assert "trained 1 steps" in res.output and (tmp_path / "s" / "model").is_dir()
    grpo_args = ["--stage", "32:4:1", "--prompts-per-step", "2", "--micro-batch", "8"]
    grpo_args += ["--set", "updates_per_step=1"]
    res = runner.invoke(
        app, ["train", "grpo", str(exports["rl"]), "-o", str(tmp_path / "g"), *args, *grpo_args]
    )
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        ["train", "grpo", str(exports["rl"]), "-o", str(tmp_path / "x"), *args, "--preset", "ppo"],
    )
    assert res.exit_code == 2 and "unknown preset 'ppo'" in res.output
    res = runner.invoke(app, ["sql", str(tmp_path / "g"), "SELECT count(*) AS n FROM metrics"])
    assert res.exit_code == 0 and "1" in res.output


def test_curate_eval_takes_a_training_folder(
    exports: dict[str, Path], toy_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "trained"
    sft(exports["sft"], toy_dir, out, max_steps=1, **SFT_TOY, **FAST)
    problems = tmp_path / "heldout.jsonl"
    rows = toy_problems(4, seed=99, levels=[1])
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = curate.evaluate(
        out, problems, out=tmp_path / "eval", n=1, max_tokens=32, template="{problem}"
    )
    assert result.summary["model"] == str(out / "model")
    assert 0 <= result.scores["heldout"]["pass@1"] <= 1
