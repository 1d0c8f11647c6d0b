"""`curate.export.hub.publish` with the real `huggingface_hub` client against a local Hub
stand-in (`tests/_fake_hub.py`) on 127.0.0.1: both upload paths, byte-identical files,
hidden files left out, private and branch honoured, dry run without a request, token
handling (missing, from the environment, never leaked), idempotent and resumable re-runs,
stale shards removed, and folders that are not exports refused."""

from __future__ import annotations

import json
import logging
import traceback
import urllib.error
import urllib.request
from pathlib import Path

import huggingface_hub
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _fake_hub import FakeHub
from huggingface_hub import _upload_pipeline, constants

from curate.errors import ConfigError
from curate.export import hub as hubmod
from curate.export.hub import PublishError, export_files, publish
from curate.stage import Stage

# the client's LFS PUT passes a file object as `data=`, which httpx deprecates; not ours
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")

TOKEN = "hf_fake_token"
WRONG = "hf_WRONG_secret_4f1c9e"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real token, endpoint or offline switch may leak in from the machine running tests."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    # the client read these once at import; the test suite may run with HF_HUB_OFFLINE=1
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-here"))


@pytest.fixture
def no_xet(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's own switch (HF_HUB_DISABLE_XET, read at import): LFS files go through the
    plain LFS protocol, which the stand-in speaks, instead of Xet storage, which it does not."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)


def make_export(root: Path, shards: int = 1) -> dict[str, bytes]:
    """An export-like folder; returns the files `publish` must upload, with their bytes."""
    (root / "data").mkdir(parents=True)
    (root / "plots").mkdir()
    readme = (
        "---\n"
        "pretty_name: 'Toy: \"math\" set # 1'\n"
        "configs:\n"
        "- config_name: default\n"
        "  data_files:\n"
        "  - split: train\n"
        "    path: data/train-*.parquet\n"
        "---\n"
        "# Toy | set\n\nAnswers like `a: b` and <i>x</i>.\n"
    )
    (root / "README.md").write_text(readme, encoding="utf-8")
    for i in range(shards):
        table = pa.table({"id": [f"p{i}-{j}" for j in range(50)], "x": list(range(50))})
        pq.write_table(table, root / "data" / f"train-{i:05d}-of-{shards:05d}.parquet")
    (root / "plots" / "lengths.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (root / "export.json").write_text(json.dumps({"format": "sft", "rows": 50}), encoding="utf-8")
    expected = {
        p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()
    }
    # what must never be sent
    (root / ".hidden").write_text("secret")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]")
    (root / "data" / ".partial.parquet").write_bytes(b"x")
    (root / "data" / "train-00009-of-00009.parquet.tmp").write_bytes(b"half a shard")
    (root / "plots" / ".cache").mkdir()
    (root / "plots" / ".cache" / "x.png").write_bytes(b"x")
    return expected


def test_one_commit_with_lfs_files(tmp_path: Path, no_xet: None) -> None:
    expected = make_export(tmp_path / "out")
    with FakeHub(lfs=True) as hub:
        r = publish(tmp_path / "out", "me/toy", token=TOKEN, endpoint=hub.url, large=False)
        assert hub.files("me/toy") == expected  # byte for byte, nothing hidden or temporary
        repo = hub.repos["me/toy"]
        assert len(repo.commits) == 1 and not repo.private
        # parquet and png went through the LFS protocol, the rest inline
        puts = [s for s in hub.seen if s.method == "PUT"]
        assert len(puts) == 2 and all(s.path.startswith("/_lfs/upload/") for s in puts)
        assert len(hub.lfs_store) == 2
        # every request but the presigned-style LFS PUT carried the token
        assert all(
            s.headers.get("authorization") == f"Bearer {TOKEN}"
            for s in hub.seen
            if s.method != "PUT"
        )
        assert (r.method, r.repo_id, r.revision, r.private, r.dry_run) == (
            "commit",
            "me/toy",
            "main",
            False,
            False,
        )
        assert r.commit_oid == repo.heads["main"]
        assert r.url == f"{hub.url}/datasets/me/toy"
        assert [f.path for f in r.files] == sorted(expected)
        assert r.total_bytes == sum(len(b) for b in expected.values())

        # publishing the same folder again changes nothing and makes no commit
        r2 = publish(tmp_path / "out", "me/toy", token=TOKEN, endpoint=hub.url, large=False)
        assert len(repo.commits) == 1 and r2.commit_oid == r.commit_oid
        assert hub.files("me/toy") == expected


def test_large_folder_path_is_multi_commit_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = make_export(tmp_path / "out", shards=2)
    # A tiny per-commit budget makes the client's streamed pipeline commit every file on its
    # own, so a few small files show the multi-commit, resumable behaviour of big exports.
    monkeypatch.setattr(_upload_pipeline, "REGULAR_CONTENT_BYTES_BUDGET", 1)
    with FakeHub(lfs=False, reject_commit_at=3) as hub:
        with pytest.raises(PublishError, match="simulated interruption"):
            publish(tmp_path / "out", "me/big", token=TOKEN, endpoint=hub.url, large=True)
        repo = hub.repos["me/big"]
        assert len(repo.commits) == 2  # interrupted after two of five files
        done = set(hub.files("me/big"))

        r = publish(tmp_path / "out", "me/big", token=TOKEN, endpoint=hub.url, large=True)
        assert r.method == "large"
        assert hub.files("me/big") == expected
        # the re-run committed only what was missing, one file per commit
        assert len(repo.commits) == 5
        assert not done & {p for c in repo.commits[2:] for p in c.paths}
        assert any("(part 2)" in c.summary for c in repo.commits)

        publish(tmp_path / "out", "me/big", token=TOKEN, endpoint=hub.url, large=True)
        assert len(repo.commits) == 5  # idempotent


def test_private_and_branch(tmp_path: Path, no_xet: None) -> None:
    expected = make_export(tmp_path / "out")
    with FakeHub(lfs=True) as hub:
        # a bare name lands in the token's namespace
        r = publish(
            tmp_path / "out", "toy", private=True, revision="v1", token=TOKEN, endpoint=hub.url
        )
        assert r.repo_id == "tester/toy" and r.private and r.revision == "v1"
        assert hub.repos["tester/toy"].private
        assert hub.files("tester/toy", "v1") == expected
        assert hub.files("tester/toy", "main") == {}
        assert r.url == f"{hub.url}/datasets/tester/toy/tree/v1"
        assert [c.branch for c in hub.repos["tester/toy"].commits] == ["v1"]

        # the branch exists now: publishing to it again works; a non-private publish to a
        # private repo leaves it private and says so
        r2 = publish(tmp_path / "out", "tester/toy", revision="v1", token=TOKEN, endpoint=hub.url)
        assert r2.private and hub.repos["tester/toy"].private


def test_private_refused_on_existing_public_repo(tmp_path: Path) -> None:
    make_export(tmp_path / "out")
    with FakeHub() as hub:
        publish(tmp_path / "out", "me/pub", token=TOKEN, endpoint=hub.url)
        make_export(tmp_path / "out2")
        with pytest.raises(PublishError, match="already exists and is public"):
            publish(tmp_path / "out2", "me/pub", private=True, token=TOKEN, endpoint=hub.url)
        assert len(hub.repos["me/pub"].commits) == 1


@pytest.mark.parametrize("large", [False, True])
def test_stale_shards_are_removed(tmp_path: Path, large: bool) -> None:
    out = tmp_path / "out"
    make_export(out, shards=3)
    with FakeHub() as hub:
        publish(out, "me/sync", token=TOKEN, endpoint=hub.url, large=large)
        # Files outside data/ and plots/ are not ours to remove.
        hub.repos["me/sync"].branches["main"]["NOTES.md"] = b"kept"
        for p in (out / "data").glob("*.parquet"):
            p.unlink()
        (out / "plots" / "lengths.png").unlink()
        pq.write_table(pa.table({"id": ["a"]}), out / "data" / "train-00000-of-00001.parquet")
        r = publish(out, "me/sync", token=TOKEN, endpoint=hub.url, large=large)
        assert r.deleted == (
            "data/train-00000-of-00003.parquet",
            "data/train-00001-of-00003.parquet",
            "data/train-00002-of-00003.parquet",
            "plots/lengths.png",
        )
        assert sorted(hub.files("me/sync")) == [
            "NOTES.md",
            "README.md",
            "data/train-00000-of-00001.parquet",
            "export.json",
        ]


def test_dry_run_makes_no_request_and_needs_no_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = make_export(tmp_path / "out")
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        r = publish(tmp_path / "out", "me/toy", private=True, revision="dev", dry_run=True)
        assert hub.seen == [] and hub.repos == {}
    assert r.dry_run and r.endpoint == hub.url and r.commit_url is None
    assert {f.path: f.size for f in r.files} == {p: len(b) for p, b in expected.items()}
    text = r.summary()
    assert text.startswith("dry run: would upload 4 files")
    assert "me/toy (private), revision dev" in text
    assert f"total  {r.total_bytes} bytes" in text
    assert all(p in text for p in expected) and ".hidden" not in text and ".tmp" not in text


def test_size_picks_the_upload_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_export(tmp_path / "out")
    assert publish(tmp_path / "out", "me/t", dry_run=True).method == "commit"
    monkeypatch.setattr(hubmod, "LARGE_FILES", 3)
    assert publish(tmp_path / "out", "me/t", dry_run=True).method == "large"
    assert publish(tmp_path / "out", "me/t", dry_run=True, large=False).method == "commit"
    monkeypatch.setattr(hubmod, "LARGE_FILES", 100)
    monkeypatch.setattr(hubmod, "LARGE_BYTES", 100)
    assert publish(tmp_path / "out", "me/t", dry_run=True).method == "large"


def test_missing_token_is_a_clear_error(tmp_path: Path) -> None:
    make_export(tmp_path / "out")
    with FakeHub() as hub:
        with pytest.raises(ConfigError, match=r"no Hugging Face token found.*HF_TOKEN.*--dry-run"):
            publish(tmp_path / "out", "me/toy", endpoint=hub.url)
        assert hub.seen == []


def test_token_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_export(tmp_path / "out")
    with FakeHub() as hub:
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        publish(tmp_path / "out", "me/env", endpoint=hub.url)
        assert hub.seen and all(s.headers["authorization"] == f"Bearer {TOKEN}" for s in hub.seen)


def test_token_never_leaks(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    make_export(tmp_path / "out")
    # the most talkative settings: every logger at DEBUG, the client's curl-style request dump
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")
    monkeypatch.setattr(constants, "HF_DEBUG", True)
    with FakeHub(tokens=frozenset({TOKEN}), echo_token=True) as hub:
        r = publish(tmp_path / "out", "me/ok", token=TOKEN, endpoint=hub.url)
        assert hub.files("me/ok")
        with pytest.raises(PublishError) as info:
            publish(tmp_path / "out", "me/bad", token=WRONG, endpoint=hub.url, large=True)
        # the stand-in really echoed the token back, and it really refused it
        assert any(s.headers.get("authorization") == f"Bearer {WRONG}" for s in hub.seen)
    err = info.value
    assert "rejected the token" in str(err) and "***" in str(err)
    full = "".join(traceback.format_exception(err))
    out, errout = capfd.readouterr()
    for text in (repr(r), r.summary(), str(err), full, caplog.text, out, errout):
        assert TOKEN not in text and WRONG not in text


def test_stand_in_enforces_auth() -> None:
    with FakeHub() as hub:
        req = urllib.request.Request(f"{hub.url}/api/whoami-v2")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, timeout=5)
        assert info.value.code == 401
        req.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.load(resp)["name"] == "tester"


def test_broken_card_yaml_is_refused_before_upload(tmp_path: Path) -> None:
    make_export(tmp_path / "out")
    (tmp_path / "out" / "README.md").write_text("---\npretty_name: a: b: [\n---\n# x\n")
    with FakeHub() as hub:
        with pytest.raises(PublishError, match=r"Invalid metadata in README.md"):
            publish(tmp_path / "out", "me/yaml", token=TOKEN, endpoint=hub.url)
        assert hub.repos["me/yaml"].commits == []


def test_refuses_what_is_not_an_export(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist.*curate export"):
        publish(tmp_path / "nope", "me/x", dry_run=True)
    (tmp_path / "a" / "data").mkdir(parents=True)
    (tmp_path / "a" / "data" / "t.parquet").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"no README.md.*curate export"):
        publish(tmp_path / "a", "me/x", dry_run=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "README.md").write_text("# x")
    with pytest.raises(ConfigError, match=r"no files under data/.*curate export"):
        export_files(tmp_path / "b")
    (tmp_path / "b" / "data").mkdir()
    (tmp_path / "b" / "data" / ".only-hidden").write_text("x")
    with pytest.raises(ConfigError, match="no files under data/"):
        export_files(tmp_path / "b")
    make_export(tmp_path / "c")
    for bad in ("", "a/b/c", "-x/y", "me/has space"):
        with pytest.raises(ConfigError, match="is not valid"):
            publish(tmp_path / "c", bad, dry_run=True)


def test_offline_mode_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_export(tmp_path / "out")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        publish(tmp_path / "out", "me/x", token=TOKEN, endpoint="http://127.0.0.1:1")
    assert huggingface_hub.__version__  # the real client, not a stand-in


def real_export(tmp_path: Path, stages: list[Stage] | None = None) -> tuple[Path, Path]:
    """A run of a pool named by its absolute path, and its verl export: (run, export)."""
    import curate
    from curate.export.card import write_card
    from curate.export.shards import export_run

    pool = tmp_path / "pool.jsonl"
    rows = [{"problem": f"What is {n} + 1?", "answer": str(n + 1)} for n in range(4)]
    pool.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir, out = tmp_path / "run", tmp_path / "export"
    recipe = curate.Recipe("abs", [curate.read(pool.resolve())], stages or [curate.ExactDedup()])
    run = recipe.run(run_dir, progress=False)
    export_run(run, out, format="verl")
    write_card(run, out, export=out)
    return run_dir, out


@pytest.mark.parametrize("large", [False, True])
def test_published_card_and_manifest_hold_no_local_paths(tmp_path: Path, large: bool) -> None:
    _, out = real_export(tmp_path)
    from curate.export.card import md_escape

    local = str(tmp_path.resolve())
    before = {name: (out / name).read_bytes() for name in ("README.md", "export.json")}
    assert local in before["export.json"].decode()
    assert md_escape(local) in before["README.md"].decode()  # in the sources table
    with FakeHub() as hub:
        r = publish(out, "me/abs", token=TOKEN, endpoint=hub.url, large=large)
        files = hub.files("me/abs")
    assert r.redacted == ("README.md", "export.json")
    assert "local paths made relative" in r.summary()
    for name in ("README.md", "export.json"):
        assert local not in files[name].decode() and md_escape(local) not in files[name].decode()
        assert (out / name).read_bytes() == before[name]  # the local files stay as they were
    assert json.loads(files["export.json"])["run"]["path"] == "../run"
    assert "../pool.jsonl" in files["README.md"].decode()  # the source table
    assert (
        files["data/train-00000-of-00001.parquet"]
        == (out / "data" / "train-00000-of-00001.parquet").read_bytes()
    )
    assert {f.path: f.size for f in r.files} == {p: len(b) for p, b in files.items()}


def test_an_export_whose_run_changed_is_refused_unless_forced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from typer.testing import CliRunner

    import curate
    from curate.cli import app

    run_dir, out = real_export(tmp_path)
    assert publish(out, "me/t", dry_run=True).warnings == ()  # fresh: nothing to say
    pool = tmp_path / "pool.jsonl"
    changed = [curate.ExactDedup(), curate.RequireGradable()]
    curate.Recipe("abs", [curate.read(pool.resolve())], changed).run(run_dir, progress=False)
    with pytest.raises(ConfigError, match=r"no longer matches its run.*--force"):
        publish(out, "me/t", dry_run=True)
    with FakeHub() as hub:
        with pytest.raises(ConfigError, match="no longer matches its run"):
            publish(out, "me/t", token=TOKEN, endpoint=hub.url)
        assert hub.repos == {}
        with caplog.at_level(logging.WARNING, logger="curate.export.hub"):
            r = publish(out, "me/t", token=TOKEN, endpoint=hub.url, force=True)
    assert (
        len(r.warnings) == 1
        and "the run has 3 stages where the export recorded 2" in (r.warnings[0])
    )
    assert r.warnings[0] in caplog.text
    cli = CliRunner()
    refused = cli.invoke(app, ["publish", str(out), "--repo", "me/t", "--dry-run"])
    assert refused.exit_code == 2 and "no longer matches its run" in refused.output
    forced = cli.invoke(app, ["publish", str(out), "--repo", "me/t", "--dry-run", "--force"])
    assert forced.exit_code == 0, forced.output

    # a run that is not on this machine (the export was copied elsewhere) cannot be checked
    run_dir.rename(tmp_path / "moved")
    r = publish(out, "me/t", dry_run=True)
    assert len(r.warnings) == 1 and "is not on this machine" in r.warnings[0]


def test_redaction_leaves_what_is_not_a_local_path(tmp_path: Path) -> None:
    from curate.export.published import redact_paths

    text = (
        "1/2 and a/b, https://huggingface.co/datasets/x/y, ~/data, /no-such-root-dir/a, "
        f"`{tmp_path}/sub/file.jsonl`. ({Path.home()}/models/m)"
    )
    got = redact_paths(text, "/elsewhere/out", home=Path.home())
    assert got.startswith(
        "1/2 and a/b, https://huggingface.co/datasets/x/y, ~/data, /no-such-root-dir/a, "
    )
    assert str(tmp_path) not in got
    assert "`…/file.jsonl`." in got or "`~/" in got  # the sentence's full stop stays outside
    assert "(~/models/m)" in got
