r"""Reading the final answer: each rule, their order, the think and debris handling,
gold and solution reading, and linear time on hostile text."""

from __future__ import annotations

import time

import pytest

from curate.errors import ConfigError
from curate.verification import (
    GOLD_RULES,
    SOLUTION_RULES,
    Extraction,
    VerifyOptions,
    read_answer,
)
from curate.verification.boxes import final_boxes
from curate.verification.extract import answer_region, last_sentence, named_choice


@pytest.mark.parametrize(
    ("text", "answer", "rule"),
    [
        # boxes of the final answer
        (r"so $x = \boxed{\frac{1}{2}}$.", r"\frac{1}{2}", "boxed"),
        (r"\boxed{(2, 2)} \quad\text{and}\quad \boxed{(6, 2)}", "(2, 2), (6, 2)", "boxed"),
        (r"\boxed{1},\boxed{2},\boxed{3}", "1, 2, 3", "boxed"),
        (r"$x = \boxed{2}$ or $x = \boxed{-3}$", "2, -3", "boxed"),
        ("Minimum value: $\\boxed{1}$\n\nMaximum value: $\\boxed{5}$", "1, 5", "boxed"),
        (r"So Paolo is $\boxed{18}$, Qing is $\boxed{14}$.", "18, 14", "boxed"),
        (r"first \boxed{5}; adding 2 gives \boxed{7}.", "7", "boxed"),
        (r"We get \boxed{3}. Then the answer is \boxed{5}.", "5", "boxed"),
        (r"\boxed{4} and again \boxed{4}", "4", "boxed"),
        (r"\boxed{\boxed{7}}", "7", "boxed"),
        (r"x^2 + y^2 = \boxed 9", "9", "boxed"),
        (r"\fbox{12}", "12", "boxed"),
        (r"\boxed{3} and then \boxed{4", "3", "boxed"),
        # final-answer sentences
        ("Final Answer: The final answer is $100$. I hope it is correct.", "100", "final_answer"),
        ("... the final answer is 12,000,023. I hope it is correct.", "12000023", "final_answer"),
        ("Therefore, the answer is $\\frac{3}{4}$.", r"\frac{3}{4}", "final_answer"),
        ("I think it's 5, the answer is 6.", "6", "final_answer"),
        ("Some work.\n\nAnswer: 34", "34", "final_answer"),
        ("Some work.\n\nAnswer:\n\n42", "42", "final_answer"),
        ("**Answer:** 7", "7", "final_answer"),
        ("Answer $9$", "9", "final_answer"),
        ("He pays 1,200 in total.\n#### 1,200", "1200", "final_answer"),
        ("|x-10|=0 only when x=10, which is choice C.", "C", "final_answer"),
        ("So the domain is: x < 2 or x > 3.", "x < 2 or x > 3", "final_answer"),
        ("The answer is thirteen.", "13", "final_answer"),
        ("The answer is 5 because 2 + 3 = 5.", "5", "final_answer"),
        # bare answers
        ("x=6 or x=-6", "x=6 or x=-6", "bare"),
        (r"$x=-6$ or $x=6$", r"$x=-6$ or $x=6$", "bare"),
        ("No solution", "No solution", "bare"),
        ("**(D) 12**", "(D) 12", "bare"),
        ("$28$ %", r"28\%", "bare"),
        ("1,000.99€", "1000.99", "bare"),
        ("5 m²", "5", "bare"),
        ("-2x", "-2x", "bare"),
        ("Area = 1/2 · 10 · 3 = 15 cm²", "15", "bare"),
        # the last math or number, whichever ends later
        ("The largest $n$ is 34.", "34", "last"),
        (r"Therefore $x \geq 5$ is the solution.", r"x \geq 5", "last"),
        ("The vector is taken to (1/5, -18/5).", "(1/5, -18/5)", "last"),
        ("The distance is 45 - 20 = 25 miles.\nCheck: 20 + 25 + 15 = 60", "25", "last"),
        ("So N = 11 since 11 squared is 121.", "11", "last"),
        ("It costs $5 and $6 more.", "6", "last"),
    ],
)
def test_rules(text: str, answer: str, rule: str) -> None:
    assert read_answer(text) == Extraction(answer, rule)


@pytest.mark.parametrize(
    "text",
    ["I am not sure.", "I give up.", "", "   ", "The day will be pleasant."],
)
def test_no_answer(text: str) -> None:
    assert read_answer(text).answer is None


def test_think() -> None:
    done = "<think>maybe \\boxed{3}</think>So \\boxed{4}."
    opened = "3 + 4 = 7 so \\boxed{3}\n</think>\n\nSo \\boxed{7}."  # R1: <think> in the prompt
    cut = "<think>3 + 4 = 7, so the answer is \\boxed{7}"
    plain = "So \\boxed{7}."
    assert read_answer(done).answer == "4"
    assert read_answer(opened).answer == "7"
    assert read_answer(cut) == Extraction(None, "unfinished_think")
    assert read_answer(plain).answer == "7"
    assert read_answer(plain, think="require") == Extraction(None, "unfinished_think")
    assert read_answer(opened, think="require").answer == "7"
    assert read_answer(cut, think="ignore").answer == "7"
    assert read_answer(done, think="ignore").answer == "4"
    sky = "<|begin_of_thought|>hm \\boxed{1}<|end_of_thought|>\n\\boxed{2}"
    assert read_answer(sky).answer == "2"


@pytest.mark.parametrize(
    ("text", "region"),
    [
        ("The answer is 7.<|im_end|>\n<|im_start|>user\nAnd 8?", "The answer is 7."),
        ("<|im_start|>assistant\nThe answer is 7.<|im_end|>", "The answer is 7."),
        ("7<|eot_id|><|start_header_id|>user<|end_header_id|>8", "7"),
        ("\\boxed{7}<｜end▁of▁sentence｜><｜User｜>\\boxed{8}", "\\boxed{7}"),
        ("\\boxed{7}</s>[INST] and 8 [/INST] \\boxed{8}", "\\boxed{7}"),
        ("So 7.\n\nUser: what about 8?\nAssistant: 8", "So 7."),
        ("#### 18\n\nQuestion: A bakery sells 24 muffins.\nAnswer: #### 96", "#### 18"),
    ],
)
def test_chat_debris_ends_the_response(text: str, region: str) -> None:
    assert (answer_region(text) or "").strip() == region


def test_gold_and_solution_rules() -> None:
    assert read_answer("x=6 or x=-6", rules=GOLD_RULES).answer == "x=6 or x=-6"
    assert read_answer(r"$\max$ at $x=2$, min at $x=4$", rules=GOLD_RULES).rule == "whole"
    solution = "We add.\nSo she pays 3 + 4 = 7 dollars.\n#### 7"
    assert read_answer(solution, rules=GOLD_RULES).answer == "7"
    assert read_answer("Adding, we get 7 apples.", rules=SOLUTION_RULES).answer is None
    assert read_answer("Adding, we get 7 apples.").answer == "7"  # a prediction: the last number
    # several boxes in a reference solution are one answer
    math = r"the points are $\boxed{(-2,18)}$ and $\boxed{(8,38)}$."
    assert read_answer(math, rules=SOLUTION_RULES).answer == "(-2,18), (8,38)"


def test_helpers() -> None:
    assert final_boxes("no box") is None
    assert named_choice("so the answer is (B) 12") == "B"
    assert named_choice("故选 A。") == "A"
    assert named_choice("No letter here.") is None
    assert named_choice("(B) is incorrect") is None  # a rejected option is not the choice
    assert named_choice("Solving gives $b$.") is None
    assert last_sentence("It is not even. So the function is odd.") == "So the function is odd."
    assert answer_region("<think>unfinished") is None
    # a restated problem is not a next few-shot question; one after an answer is
    restated = "Problem: find x.\nWe get \\boxed{4}."
    assert answer_region(restated) == restated


def test_rules_are_configurable() -> None:
    text = "The largest $n$ is 34."
    assert read_answer(text, rules=("boxed", "final_answer")).answer is None
    assert read_answer(text, rules=("whole",)).answer == text
    with pytest.raises(ValueError, match="unknown extraction rule"):
        read_answer(text, rules=("nonsense",))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="rules"):
        VerifyOptions(rules=("nonsense",))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    [
        "$" * 200_000,
        "$a" * 100_000,
        r"\boxed{" * 20_000 + r"\boxed{1}",
        "the answer is " * 20_000,
        "(1, " * 50_000,
        "1," * 100_000,
        r"\(" * 50_000,
        r"\[" * 50_000,
        "$$" + "a" * 200_000,
        "\\boxed{1}, and " * 20_000,
        "<think>" * 50_000,
        "<|im_end|>" * 50_000,
        "**" * 100_000,
        "x = 1 = " * 30_000,
        "a\n" + "\n" * 40_000 + "b",
        "Final answer" + " \n" * 20_000,
        r"\boxed{" * 10_000 + "1" + "}" * 10_000,
        "$$" + "x " * 20_000 + "$$",
        "1" + " " * 100_000 + "x",
        "#### " + "\n " * 30_000,
        "Check:" + " " * 50_000 + "1",
    ],
    ids=[
        "dollars",
        "open-dollars",
        "boxes",
        "anchors",
        "tuples",
        "commas",
        "parens",
        "brackets",
        "open-display",
        "joined",
        "thinks",
        "debris",
        "bold",
        "chain",
        "newlines",
        "anchor-spaces",
        "nested-boxes",
        "long-display",
        "spaces-after-number",
        "gsm8k-spaces",
        "check-spaces",
    ],
)
def test_hostile_text_is_read_in_linear_time(text: str) -> None:
    start = time.perf_counter()
    read_answer(text)
    read_answer(text, rules=GOLD_RULES)
    assert time.perf_counter() - start < 3.0
