"""HFGenerator with a real (tiny, locally trained) model: shapes, order, seeds, stops,
failures."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from curate.errors import ConfigError
from curate.generate.base import Completion, Generator, Request, Sampling
from curate.generate.hf import HFGenerator, weights_fingerprint
from curate.toy import toy_model


@pytest.fixture(scope="module")
def gen(toy_dir: Path) -> Iterator[HFGenerator]:
    g = HFGenerator(str(toy_dir), batch_size=4, threads=1)  # one thread: see HFGenerator
    yield g
    g.close()


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


HOT = Sampling(temperature=1.0, top_p=1.0, max_tokens=24)


def test_protocol_and_description(gen: HFGenerator, toy_dir: Path) -> None:
    assert isinstance(gen, Generator)
    assert gen.model == str(toy_dir)
    assert HFGenerator(str(toy_dir), label="toy").model == "toy"
    d = gen.describe()
    assert d["backend"] == "hf" and d["model_path"] is None  # local: the weights name it
    assert d["weights"] == weights_fingerprint(toy_dir) and d["weights"] is not None
    hub = HFGenerator("org/model", revision="v1").describe()
    assert (hub["model_path"], hub["revision"], hub["weights"]) == ("org/model", "v1", None)
    assert "device" not in d and "batch_size" not in d
    assert HFGenerator(str(toy_dir), batch_size=1, device="cpu").describe() == d
    assert HFGenerator(str(toy_dir), dtype="bfloat16").describe() != d


def test_fingerprint_sees_other_weights(toy_dir: Path, tmp_path: Path) -> None:
    other = toy_model(tmp_path / "other", steps=1, seed=1)
    assert weights_fingerprint(other) != weights_fingerprint(toy_dir)
    assert weights_fingerprint(other) == weights_fingerprint(other)


def test_the_same_weights_elsewhere_are_the_same_model(toy_dir: Path, tmp_path: Path) -> None:
    """A model directory copied to another path (another machine, another user's cache) keeps
    the responses cache key and draws the same samples: its path is not part of the key."""
    import curate

    copy = Path(shutil.copytree(toy_dir, tmp_path / "elsewhere" / "model"))
    here, there = (HFGenerator(str(d), label="toy", threads=1) for d in (toy_dir, copy))
    stage = curate.Distill(here, n=2, template="{problem}", sampling=HOT)
    assert stage.gen_key(here) == stage.gen_key(there)
    requests = [Request("What is 2 + 3?", n=2, seed=7)]
    assert here.generate(requests, HOT) == there.generate(requests, HOT)
    here.close()
    there.close()


def test_results_in_request_order_with_n_samples(gen: HFGenerator) -> None:
    problems = ["What is 3 + 4?", "What is 512 - 17?", "What is 1 + 1?", "What is 88 + 9?"]
    requests = [
        Request(chat(p), n=n, seed=i)
        for i, (p, n) in enumerate(zip(problems, [1, 3, 2, 1], strict=True))
    ]
    out = gen.generate(requests, HOT)
    assert [len(o) for o in out] == [1, 3, 2, 1]
    for o in out:
        for c in o:
            assert isinstance(c, Completion) and c.finish_reason in ("stop", "length")
            assert c.n_tokens is not None and 0 < c.n_tokens <= HOT.max_tokens
            assert "<|im_end|>" not in c.text and "<|endoftext|>" not in c.text
    # each request alone (its own batch) gives the same samples: order kept, seeds per sample
    for r, o in zip(requests, out, strict=True):
        assert gen.generate([r], HOT) == [o]


def test_seeds_decide_samples(gen: HFGenerator) -> None:
    req = Request(chat("What is 57 + 68?"), n=6, seed=1)
    first = gen.generate([req], HOT)[0]
    assert gen.generate([req], HOT)[0] == first
    assert len({c.text for c in first}) > 1  # the n samples differ from each other
    other = gen.generate([Request(req.prompt, n=6, seed=2)], HOT)[0]
    assert [c.text for c in other] != [c.text for c in first]
    # batch_size does not change the samples
    wide = HFGenerator(gen.model_path, batch_size=16)
    assert wide.generate([req], HOT)[0] == first


def test_chat_template_applied(gen: HFGenerator, toy_dir: Path) -> None:
    rendered = "<|im_start|>user\nWhat is 6 + 7?<|im_end|>\n<|im_start|>assistant\n"
    by_chat = gen.generate([Request(chat("What is 6 + 7?"), n=2, seed=3)], HOT)
    by_text = gen.generate([Request(rendered, n=2, seed=3)], HOT)
    assert by_chat == by_text
    # the model learnt to answer after the template's assistant header
    greedy = gen.generate([Request(chat("What is 6 + 7?"))], Sampling(temperature=0, max_tokens=40))
    assert greedy[0][0].text.startswith("<think>")


def test_plain_prompt_without_template(gen: HFGenerator) -> None:
    plain = HFGenerator(gen.model_path, chat_template=False)
    out = plain.generate([Request(chat("What is 6 + 7?"), seed=0)], HOT)[0][0]
    assert out.finish_reason in ("stop", "length")


def test_length_and_stop(gen: HFGenerator) -> None:
    req = Request(chat("What is 12 + 30?"), n=2, seed=0)
    short = gen.generate([req], Sampling(max_tokens=3))[0]
    assert all(c.finish_reason == "length" and c.n_tokens == 3 for c in short)
    greedy = Sampling(temperature=0, max_tokens=60)
    full = gen.generate([req], greedy)[0][0]
    assert full.finish_reason == "stop" and "</think>" in full.text
    # n_tokens counts the EOS token
    tok = gen._engine().tokenizer
    assert full.n_tokens == len(tok(full.text, add_special_tokens=False)["input_ids"]) + 1
    cut = gen.generate([req], Sampling(temperature=0, max_tokens=60, stop=("</think>",)))[0][0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index("</think>")]
    assert cut.n_tokens is not None and cut.n_tokens < full.n_tokens


def test_failing_request_is_recorded(gen: HFGenerator) -> None:
    too_long = "1 + " * 400  # 800 tokens: longer than the 512-token context
    requests = [Request(chat("What is 2 + 2?"), seed=0), Request(chat(too_long), n=2, seed=0)]
    ok, bad = gen.generate(requests, HOT)
    assert ok[0].finish_reason in ("stop", "length")
    assert [c.finish_reason for c in bad] == ["error", "error"]
    assert bad[0].error is not None and "context" in bad[0].error
    assert gen.generate([], HOT) == []


def test_close_and_reload(toy_dir: Path) -> None:
    g = HFGenerator(str(toy_dir))
    req = [Request("What is 1 + 2?", seed=5)]
    first = g.generate(req, HOT)
    g.close()
    assert g.generate(req, HOT) == first
    assert g == HFGenerator(str(toy_dir))  # the engine is not part of the configuration


def test_bad_configuration(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        HFGenerator("m", batch_size=0)
    with pytest.raises(ConfigError, match="threads"):
        HFGenerator("m", threads=0)
    with pytest.raises(ConfigError, match="could not load"):
        HFGenerator(str(tmp_path / "missing")).generate([Request("hi")], HOT)
