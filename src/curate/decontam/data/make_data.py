"""Rebuild the bundled benchmark files from the shared data (a maintainer tool, not shipped).

    python src/curate/decontam/data/make_data.py [SHARED_DATA_DIR]

Every benchmark becomes ``<name>.jsonl`` with only ``id``, ``problem`` and ``answer``
(solutions and other fields are dropped to keep the package small), plus ``catalog.json``
(what `curate.decontam.registry` reads) and ``README.md`` (origin, path, commit and
license of every file, from the shared data's SOURCES.md). Problems are NFC-normalized
and stripped, as `curate.read` does. An ``id`` may repeat when the same item is published
in more than one wording (AIME from MathArena and from AoPS); it counts as one item.
The output is deterministic: re-running it gives the same bytes.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
QWEN = ("QwenLM/Qwen2.5-Math", "a45202bd16f1ec06f433442dc1152d0074773465")
QWEN_LICENSE = "MIT (evaluation/LICENSE, Copyright (c) 2024 Zhibin Gou)"
ARENA = ("eth-sri/matharena", "81f103e38b1df076afa65ee0a3ffbe148d42e6d2")
ARENA_LICENSE = "MIT (Copyright (c) 2024 SRI Lab, ETH Zurich)"
RLLM = ("agentica-project/rllm", "874daa4acb7f451dc2a4b2b6e8ce28f5aa88d1f5")

Record = dict[str, Any]
Row = tuple[str, str, str | None]  # id, problem, answer


@dataclass(frozen=True)
class Part:
    """One shared file that feeds a benchmark, and where it came from."""

    shared: str  # path under the shared data folder
    repo: str
    commit: str
    path: str  # path in the origin repository
    license: str
    convert: Callable[[list[Record]], Iterator[Row]]
    note: str = ""


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    fields: str  # which source fields make problem and answer
    parts: tuple[Part, ...]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if len(text) > 1 and text[0] == "$" and text[-1] == "$" and "$" not in text[1:-1]:
        text = text[1:-1].strip()
    return text or None


def _problem(*pieces: Any) -> str:
    text = "\n".join(str(p).strip() for p in pieces if p is not None and str(p).strip())
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n")).strip()


def _aops_id(url: str) -> str:
    m = re.search(r"(\d{4})_AMC_(\w+?)_Problems/Problem_(\d+)", url) or re.search(
        r"(\d{4})_AIME_(\w+?)_Problems/Problem_(\d+)", url
    )
    if not m:
        raise ValueError(f"unexpected AoPS url {url!r}")
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}"


def _arena(records: list[Record]) -> Iterator[Row]:
    for r in records:
        comp = str(r["competition"])
        m = re.fullmatch(r"aime_(\d{4})_(I+)", comp)
        item = f"{m.group(1)}-{m.group(2)}-{r['id']}" if m else f"{comp}-{r['id']}"
        yield item, _problem(r["problem"]), _text(r["answer"])


def _aops(records: list[Record]) -> Iterator[Row]:
    for r in records:
        yield _aops_id(str(r["url"])), _problem(r["problem"]), _text(r["answer"])


def _qwq_aime25(records: list[Record]) -> Iterator[Row]:
    suffix = "Please reason step by step, and put your final answer within \\boxed{}."
    for i, r in enumerate(records):
        part = "I" if i < 15 else "II"
        problem = str(r["prompt"]).strip().removesuffix(suffix)
        yield f"2025-{part}-{i % 15 + 1}", _problem(problem), _text(r["answer"])


def _boxed(text: str) -> str | None:
    from curate.verification import last_boxed

    return last_boxed(text)


def _options(options: Any) -> tuple[str, dict[str, str]]:
    """Options as one text line and as label -> text."""
    if isinstance(options, str):
        options = ast.literal_eval(options) if options.strip().startswith("[") else options
    if isinstance(options, dict):
        labelled = {str(k): str(v) for k, v in options.items()}
    elif isinstance(options, list):
        labelled = {}
        for opt in options:
            m = re.match(r"\s*([A-E])\)\s*(.*)", str(opt), re.S)
            if m:
                labelled[m.group(1)] = m.group(2).strip()
    else:
        labelled = {
            m.group(1): m.group(2).strip()
            for m in re.finditer(r"([A-E])\)\s*(.*?)(?=\s+[A-E]\)|\Z)", str(options), re.S)
        }
    return " ".join(f"{k}) {v}" for k, v in labelled.items()), labelled


def _choice(question: str, options: Any, label: Any) -> tuple[str, str | None]:
    line, labelled = _options(options)
    return _problem(question, line), _text(labelled.get(str(label), label))


def _simple(problem: str, answer: str, ident: str | None = None) -> Callable[..., Iterator[Row]]:
    def convert(records: list[Record]) -> Iterator[Row]:
        for i, r in enumerate(records):
            item = str(r[ident]) if ident else str(i)
            yield item, _problem(r[problem]), _text(r[answer])

    return convert


# college_math records name their textbook's license; only the openly licensed ones are
# bundled (CC BY-NC-SA, GFDL and "no money may be charged" terms are left out).
_OPEN_BOOKS = (
    "Creative Commons Attribution 3.0 Unported License (CC BY 3.0)",
    "Creative Commons Attribution License (CC BY)",
    "Creative Commons License  (CC BY)",
)


def _college_math(records: list[Record]) -> Iterator[Row]:
    for i, r in enumerate(records):
        if r.get("license") in _OPEN_BOOKS:
            yield str(i), _problem(r["question"]), _text(r["answer"])


def _math500(records: list[Record]) -> Iterator[Row]:
    for r in records:
        yield str(r["unique_id"]), _problem(r["problem"]), _text(r["answer"])


def _gsm8k(records: list[Record]) -> Iterator[Row]:
    for i, r in enumerate(records):
        answer = str(r["answer"]).rsplit("####", 1)[-1].strip().replace(",", "")
        yield f"test-{i}", _problem(r["question"]), answer


def _minerva(records: list[Record]) -> Iterator[Row]:
    for r in records:
        yield str(r["idx"]), _problem(r["problem"]), _text(_boxed(str(r["solution"])))


def _olympiad(records: list[Record]) -> Iterator[Row]:
    for r in records:
        answer = ", ".join(a for a in (_text(x) for x in r["final_answer"] or []) if a)
        yield str(r["id"]), _problem(r["context"], r["question"]), answer or None


def _body_question(body: str, question: str, answer: str, ident: str | None) -> Any:
    def convert(records: list[Record]) -> Iterator[Row]:
        for i, r in enumerate(records):
            value = _text(r[answer])
            if value:  # asdiv: "9 (apples)" -> "9"
                value = re.sub(r"\s*\([^()]*\)$", "", value) or value
            item = str(r[ident]) if ident else str(i)
            yield item, _problem(f"{str(r[body]).strip()} {str(r[question]).strip()}"), value

    return convert


def _mc(question: str, options: str, label: str, ident: str | None = None) -> Any:
    def convert(records: list[Record]) -> Iterator[Row]:
        for i, r in enumerate(records):
            problem, answer = _choice(str(r[question]), r[options], r[label])
            yield (str(r[ident]) if ident else str(i)), problem, answer

    return convert


def _gaokao_qa(records: list[Record]) -> Iterator[Row]:
    for i, r in enumerate(records):
        problem, answer = _choice(str(r["question"]), r["options"] or {}, r["label"])
        yield str(i), _problem(r["passage"], problem), answer


def _qwen(shared: str, convert: Any, note: str = "") -> Part:
    path = "evaluation/data/" + shared.removeprefix("qwen25_math_eval/")
    return Part(shared, QWEN[0], QWEN[1], path, QWEN_LICENSE, convert, note)


def _arena_part(shared: str, path: str) -> Part:
    note = "DERIVED in the shared data: one record per problem from problems/<id>.tex + answers.csv"
    return Part(shared, ARENA[0], ARENA[1], path, ARENA_LICENSE, _arena, note)


SPECS: tuple[Spec, ...] = (
    Spec(
        "aime24",
        "AIME 2024 I+II (30 items, two wordings each: AoPS and MathArena)",
        "problem; answer",
        (
            _qwen("qwen25_math_eval/aime24/test.jsonl", _aops),
            _arena_part("matharena/aime_2024.jsonl", "data/aime/aime_2024_{I,II}/"),
        ),
    ),
    Spec(
        "aime25",
        "AIME 2025 I+II (30 items, two wordings each: QwQ/AoPS and MathArena)",
        "problem (QwQ: prompt without its instruction); answer",
        (
            Part(
                "qwq_eval/aime25.jsonl",
                "QwenLM/QwQ",
                "620a5eadc89ff464d339367dd9c9973a93215c81",
                "eval/data/aime25.jsonl",
                "Apache-2.0",
                _qwq_aime25,
                "ids by file order (I 1-15, II 1-15); answers agree with MathArena",
            ),
            _arena_part("matharena/aime_2025.jsonl", "data/aime/aime_2025_{I,II}/"),
        ),
    ),
    Spec(
        "hmmt_feb24",
        "HMMT February 2024 (30)",
        "problem; answer",
        (_arena_part("matharena/hmmt_feb_2024.jsonl", "data/hmmt/hmmt_feb_2024/"),),
    ),
    Spec(
        "hmmt_feb25",
        "HMMT February 2025 (30)",
        "problem; answer",
        (_arena_part("matharena/hmmt_feb_2025.jsonl", "data/hmmt/hmmt_feb_2025/"),),
    ),
    Spec(
        "amc23",
        "AMC 12 2023 (40, Qwen2.5-Math evaluation)",
        "problem; answer",
        (_qwen("qwen25_math_eval/amc23/test.jsonl", _aops),),
    ),
    Spec(
        "amc22_23",
        "AMC 12 2022 and 2023 (83, the AMC set of DeepScaleR/rllm evaluations)",
        "problem; answer",
        (
            Part(
                "rllm/test/amc.json",
                RLLM[0],
                RLLM[1],
                "rllm/data/test/math/amc.json",
                "MIT (Copyright (c) 2025 agentica-project)",
                _aops,
            ),
        ),
    ),
    Spec(
        "math500",
        "MATH-500 (PRM800K test split)",
        "problem; answer; id = unique_id",
        (
            Part(
                "prm800k_math_splits/test.jsonl",
                "ZubinGou/math-evaluation-harness",
                "db77bc6bb2a17c90ed2d63e88ebd8c40a82858c5",
                "data/math_oai/test.jsonl",
                "MIT; byte-identical to openai/prm800k prm800k/math_splits/test.jsonl (MIT)",
                _math500,
            ),
        ),
    ),
    Spec(
        "gsm8k",
        "GSM8K test (1,319)",
        "question; answer after ####",
        (
            Part(
                "grade_school_math/test.jsonl",
                "openai/grade-school-math",
                "3101c7d5072418e28b9008a6636bde82a006892c",
                "grade_school_math/data/test.jsonl",
                "MIT",
                _gsm8k,
            ),
        ),
    ),
    Spec(
        "minerva",
        "Minerva Math / OCWCourses (272)",
        "problem; answer = last \\boxed{} of solution",
        (_qwen("qwen25_math_eval/minerva_math/test.jsonl", _minerva),),
    ),
    Spec(
        "olympiadbench",
        "OlympiadBench, English text-only open-ended math (675)",
        "question; final_answer (joined with ', ')",
        (_qwen("qwen25_math_eval/olympiadbench/test.jsonl", _olympiad),),
    ),
    Spec(
        "college_math",
        "College Math: the 1,260 of 2,818 items from CC BY textbooks",
        "question; answer; id = row in the original file",
        (
            _qwen(
                "qwen25_math_eval/college_math/test.jsonl",
                _college_math,
                "Only items whose record names a CC BY license (Beginning and Intermediate "
                "Algebra, Matrix Theory and Linear Algebra, A First Course in Linear Algebra); "
                "the 1,558 items from CC BY-NC-SA, GFDL or otherwise restricted textbooks are "
                "not bundled (register the original file to check against them)",
            ),
        ),
    ),
    Spec(
        "gaokao2023en",
        "Gaokao 2023 math, English (385)",
        "question; answer",
        (_qwen("qwen25_math_eval/gaokao2023en/test.jsonl", _simple("question", "answer")),),
    ),
    Spec(
        "gaokao2024_i",
        "Gaokao 2024 paper I math, Chinese (14)",
        "question; answer",
        (_qwen("qwen25_math_eval/gaokao2024_I/test.jsonl", _simple("question", "answer")),),
    ),
    Spec(
        "gaokao2024_ii",
        "Gaokao 2024 paper II math, Chinese (14)",
        "question; answer",
        (_qwen("qwen25_math_eval/gaokao2024_II/test.jsonl", _simple("question", "answer")),),
    ),
    Spec(
        "gaokao2024_mix",
        "Gaokao 2024 math, mixed papers, Chinese (91)",
        "question; answer",
        (
            _qwen(
                "qwen25_math_eval/gaokao2024_mix/test.jsonl", _simple("question", "answer", "idx")
            ),
        ),
    ),
    Spec(
        "gaokao_math_cloze",
        "Gaokao math fill-in-the-blank, Chinese (118)",
        "question; answer",
        (_qwen("qwen25_math_eval/gaokao_math_cloze/test.jsonl", _simple("question", "answer")),),
    ),
    Spec(
        "gaokao_math_qa",
        "Gaokao math multiple choice, Chinese (351)",
        "question + options; answer = text of the labelled option",
        (_qwen("qwen25_math_eval/gaokao_math_qa/test.jsonl", _gaokao_qa),),
    ),
    Spec(
        "cn_middle_school",
        "Chinese middle-school math (101)",
        "question; answer",
        (
            _qwen(
                "qwen25_math_eval/cn_middle_school/test.jsonl",
                _simple("question", "answer", "idx"),
            ),
        ),
    ),
    Spec(
        "cmath",
        "CMATH, Chinese elementary-school math word problems (600)",
        "question; answer",
        (_qwen("qwen25_math_eval/cmath/test.jsonl", _simple("question", "answer")),),
    ),
    Spec(
        "carp_en",
        "CARP (English) (976)",
        "content; answer",
        (_qwen("qwen25_math_eval/carp_en/test.jsonl", _simple("content", "answer")),),
    ),
    Spec(
        "svamp",
        "SVAMP (1,000)",
        "Body + ' ' + Question; Answer",
        (
            _qwen(
                "qwen25_math_eval/svamp/test.jsonl",
                _body_question("Body", "Question", "Answer", "ID"),
            ),
        ),
    ),
    Spec(
        "asdiv",
        "ASDiv (2,215)",
        "body + ' ' + question; answer without its unit in parentheses",
        (
            _qwen(
                "qwen25_math_eval/asdiv/test.jsonl",
                _body_question("body", "question", "answer", "idx"),
            ),
        ),
    ),
    Spec(
        "mawps",
        "MAWPS (2,065: AddSub, MultiArith, SingleEq, SingleOp)",
        "input; target",
        (_qwen("qwen25_math_eval/mawps/test.jsonl", _simple("input", "target", "idx")),),
    ),
    Spec(
        "sat_math",
        "SAT math (32)",
        "question + options; answer = text of the labelled option",
        (
            _qwen(
                "qwen25_math_eval/sat_math/test.jsonl", _mc("question", "options", "Answer", "id")
            ),
        ),
    ),
    Spec(
        "aqua",
        "AQuA-RAT test (254)",
        "question + options; answer = text of the correct option",
        (_qwen("qwen25_math_eval/aqua/test.jsonl", _mc("question", "options", "correct")),),
    ),
)


def _records(path: Path) -> list[Record]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        data = json.loads(text)
        assert isinstance(data, list)
        return data
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def build(shared: Path, out: Path = HERE) -> dict[str, Any]:
    """Write every bundled file and return the catalog."""
    catalog: dict[str, Any] = {}
    for spec in SPECS:
        rows: list[Row] = []
        for part in spec.parts:
            rows.extend(part.convert(_records(shared / part.shared)))
        lines = [
            json.dumps({"id": i, "problem": p, "answer": a}, ensure_ascii=False) for i, p, a in rows
        ]
        blob = ("\n".join(lines) + "\n").encode()
        (out / f"{spec.name}.jsonl").write_bytes(blob)
        catalog[spec.name] = {
            "file": f"{spec.name}.jsonl",
            "title": spec.title,
            "items": len({r[0] for r in rows}),
            "rows": len(rows),
            "bytes": len(blob),
            "fields": spec.fields,
            "sources": [
                {
                    "repo": p.repo,
                    "path": p.path,
                    "commit": p.commit,
                    "license": p.license,
                    "shared": p.shared,
                    **({"note": p.note} if p.note else {}),
                }
                for p in spec.parts
            ],
        }
    text = json.dumps(catalog, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    (out / "catalog.json").write_text(text, encoding="utf-8")
    (out / "README.md").write_text(_readme(catalog), encoding="utf-8")
    return catalog


def _readme(catalog: dict[str, Any]) -> str:
    total = sum(c["bytes"] for c in catalog.values())
    out = [
        "# Bundled benchmarks",
        "",
        "Evaluation sets that `curate.Decontaminate` checks training data against. Each file",
        "is JSON Lines with only `id`, `problem` and `answer` (solutions and other fields",
        "were dropped to keep the package small), built by `make_data.py` from public copies",
        "of the data; the origin of every file and its license are below. An `id` appears",
        "twice where the same item is bundled in two published wordings (AIME); it counts",
        "as one item. A benchmark's version is the BLAKE2b hash of its file's bytes.",
        "",
        "| name | items | rows | bytes | what | problem; answer from |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name, c in catalog.items():
        out.append(
            f"| `{name}` | {c['items']:,} | {c['rows']:,} | {c['bytes']:,} | {c['title']} "
            f"| {c['fields']} |"
        )
    out += [
        "",
        f"Total: {len(catalog)} files, {total:,} bytes.",
        "",
        "Not bundled: `mmlu_stem` (3,018 multiple-choice questions, mostly not mathematics:",
        "biology, chemistry, computer science, physics), `tabmwp` (not in the snapshot), and",
        "the college_math items from textbooks under non-commercial or GFDL terms.",
        "",
        "`common_ngrams.json` is not a benchmark: the common phrases of ordinary problems",
        'that `Decontaminate(reference="bundled")` never matches (10-grams in at least 3',
        "of the 4,500 MATH test problems outside MATH-500, from `hendrycks_math/test.jsonl`",
        "of the shared data: aiwaves-cn/agents at commit",
        "`e8c4e3c2d19739d3dff59e577d1c97090cc15f59`, Apache-2.0; MATH itself is MIT). Built",
        "by `curate/decontam/common.py` (`python src/curate/decontam/common.py DATA_DIR`).",
        "",
        "The licenses below are those of the repositories the files were taken from (as the",
        "shared data's SOURCES.md records them). The underlying data sets may carry their own",
        "terms; check them before redistributing these files on their own.",
        "",
        "## Origins and licenses",
        "",
    ]
    for name, c in catalog.items():
        out.append(f"### `{name}.jsonl`")
        out.append("")
        for s in c["sources"]:
            note = f" {s['note']}." if s.get("note") else ""
            out.append(
                f"- {s['repo']} `{s['path']}` at commit `{s['commit']}`; license: "
                f"{s['license']}.{note}"
            )
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[4] / "shared" / "data"
    cat = build(root)
    print(f"{len(cat)} benchmarks, {sum(c['bytes'] for c in cat.values()):,} bytes")
