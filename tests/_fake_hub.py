"""A small real HTTP server on 127.0.0.1 speaking the part of the Hugging Face Hub API that
`huggingface_hub` (2.x) uses to publish a dataset, for testing `curate.export.hub.publish`
with the real client pointed at it (``endpoint=hub.url``).

What the client sends, and what this server answers (found in the installed client:
``hf_api.py``, ``_commit_api.py``, ``lfs.py``, ``_upload_pipeline.py``):

- ``POST /api/repos/create`` {name, organization, visibility, type}: 200 {url}, or 409 when
  the repository exists (``exist_ok=True`` swallows it);
- ``GET /api/datasets/{id}[/revision/{rev}]``: the repository info (``repo_info``);
- ``POST /api/datasets/{id}/branch/{branch}`` {startingPoint}: 200, or 409 when it exists;
- ``GET /api/datasets/{id}/tree/{rev}``: the files (``list_repo_files``), one page;
- ``POST /api/validate-yaml`` {content}: parses README.md's front matter with PyYAML's safe
  loader, 400 with the parser's message when it is broken (the Hub does the same check);
- ``POST /api/datasets/{id}/preupload/{rev}``: each file's upload mode and, when the file is
  already there, its oid (git blob sha1 for regular files, sha256 for LFS ones), which is how
  the client skips unchanged files;
- ``POST /datasets/{id}.git/info/lfs/objects/batch``: LFS "basic" transfer actions: a ``PUT``
  to ``/_lfs/upload/{oid}`` (no auth, like a presigned URL; the body must hash to the oid)
  and a ``POST /_lfs/verify``;
- ``POST /api/datasets/{id}/commit/{rev}``: the NDJSON commit (header, file, lfsFile,
  deletedFile, deletedFolder lines), applied to the branch;
- ``GET /api/whoami-v2``: the user, should anything ask.

Xet storage is not spoken. The client uploads through Xet whenever ``hf_xet`` is installed and
the server says a file is LFS; so with ``lfs=True`` (``*.parquet``/``*.png`` and big files
are LFS) the test must turn Xet off in the client (``HF_HUB_DISABLE_XET``), and with
``lfs=False`` every file is "regular" (sent inline, base64, in the commit) and the client's
Xet-based pipeline (``upload_folder``) works unchanged.

Every request but the LFS upload needs ``Authorization: Bearer <a token in tokens>``, else 401
(with ``echo_token=True`` the 401 body repeats the header, as some servers do, to test that
the client side never lets it through). Requests are recorded in ``seen``;
``reject_commit_at=n`` refuses the n-th commit request once (an interrupted upload).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml  # type: ignore[import-untyped]  # PyYAML, a dependency of huggingface_hub
from _http import serve, stop

LFS_SUFFIXES = (".parquet", ".png", ".arrow", ".bin")
LFS_MIN_SIZE = 10 * 1024 * 1024


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Commit:
    oid: str
    branch: str
    summary: str
    paths: tuple[str, ...]


@dataclass
class Repo:
    repo_id: str
    private: bool
    # branch -> path -> content; a commit replaces the branch's dict
    branches: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    heads: dict[str, str] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)


class HttpError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra


def git_blob_oid(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


@dataclass
class FakeHub:
    """The server; use as a context manager, ``url`` is the endpoint to give the client."""

    tokens: frozenset[str] = frozenset({"hf_fake_token"})
    user: str = "tester"
    lfs: bool = False
    echo_token: bool = False
    # the n-th commit request (1-based, over the server's life) is refused with a 400, once:
    # an interrupted upload, to test that re-running resumes it
    reject_commit_at: int = 0
    n_commit_requests: int = 0
    seen: list[Seen] = field(default_factory=list)
    repos: dict[str, Repo] = field(default_factory=dict)
    lfs_store: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        """The files of a branch, as the last commit left them."""
        return dict(self.repos[repo_id].branches[branch])

    def __enter__(self) -> FakeHub:
        self._server = serve(self._handle, methods=("GET", "POST", "PUT"), keep_alive=True)
        return self

    def __exit__(self, *exc: object) -> None:
        stop(self._server)

    # ---------------------------------------------------------------- plumbing

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        body = _read_body(h)
        split = urlsplit(h.path)
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self.seen.append(Seen(h.command, split.path, headers))
        try:
            if not split.path.startswith("/_lfs/upload/"):
                auth = headers.get("authorization", "")
                if not (auth.startswith("Bearer ") and auth[7:] in self.tokens):
                    echo = f" (received {auth!r})" if self.echo_token else ""
                    raise HttpError(401, f"Invalid credentials in Authorization header{echo}")
            status, answer = self._route(h.command, split.path, parse_qs(split.query), body)
        except HttpError as e:
            extra = {"X-Error-Code": e.code} if e.code else {}
            _send(h, e.status, {"error": e.message, **e.extra}, extra)
            return
        _send(h, status, answer)

    def _repo(self, repo_id: str) -> Repo:
        if repo_id not in self.repos:
            raise HttpError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return self.repos[repo_id]

    def _branch(self, repo: Repo, rev: str) -> dict[str, bytes]:
        if rev not in repo.branches:
            raise HttpError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo.branches[rev]

    def _is_lfs(self, path: str, size: int) -> bool:
        return self.lfs and (path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE)

    def _oid(self, path: str, content: bytes) -> str:
        if self._is_lfs(path, len(content)):
            return hashlib.sha256(content).hexdigest()
        return git_blob_oid(content)

    # ---------------------------------------------------------------- routes

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Any:
        parts = path.strip("/").split("/")
        if method == "GET" and path == "/api/whoami-v2":
            return 200, {"type": "user", "name": self.user, "auth": {"type": "access_token"}}
        if method == "POST" and path == "/api/repos/create":
            return self._create(json.loads(body))
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body)["content"])
        if method == "POST" and path.endswith(".git/info/lfs/objects/batch"):
            return self._lfs_batch(json.loads(body))
        if method == "PUT" and path.startswith("/_lfs/upload/"):
            oid = parts[-1]
            if hashlib.sha256(body).hexdigest() != oid:
                raise HttpError(400, "uploaded content does not match its oid")
            with self._lock:
                self.lfs_store[oid] = body
            return 200, {}
        if method == "POST" and path == "/_lfs/verify":
            if json.loads(body)["oid"] not in self.lfs_store:
                raise HttpError(404, "LFS object not found")
            return 200, {"success": True}
        if len(parts) >= 4 and parts[:2] == ["api", "datasets"]:
            repo_id = f"{parts[2]}/{parts[3]}"
            action, rest = (
                (parts[4], [unquote(p) for p in parts[5:]]) if len(parts) > 4 else ("", [])
            )
            with self._lock:
                repo = self._repo(repo_id)
                if method == "GET" and action in ("", "revision"):
                    return 200, self._info(repo, rest[0] if rest else "main")
                if method == "GET" and action == "tree":
                    return 200, self._tree(repo, rest[0])
                if method == "POST" and action == "branch":
                    return self._create_branch(repo, rest[0], json.loads(body or b"{}"))
                if method == "POST" and action == "preupload":
                    return 200, self._preupload(repo, rest[0], json.loads(body))
                if method == "POST" and action == "commit":
                    if query.get("create_pr"):
                        raise HttpError(400, "pull requests are not supported by this fake")
                    return 200, self._commit(repo, rest[0], body)
        raise HttpError(404, f"no route for {method} {path} in the fake Hub")

    def _create(self, payload: dict[str, Any]) -> tuple[int, Any]:
        if payload.get("type") != "dataset":
            raise HttpError(400, f"this fake only makes dataset repos, got {payload.get('type')}")
        repo_id = f"{payload.get('organization') or self.user}/{payload['name']}"
        url = f"{self.url}/datasets/{repo_id}"
        with self._lock:
            if repo_id in self.repos:
                # the client reads `url` from the 409 too (create_repo with exist_ok=True)
                raise HttpError(409, "You already created this dataset repo", url=url)
            repo = Repo(repo_id, private=payload.get("visibility") == "private")
            repo.heads["main"] = hashlib.sha1(repo_id.encode()).hexdigest()
            self.repos[repo_id] = repo
        return 200, {"url": url, "name": repo_id}

    def _info(self, repo: Repo, rev: str) -> dict[str, Any]:
        files = self._branch(repo, rev)
        return {
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": repo.heads[rev],
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "siblings": [{"rfilename": p} for p in sorted(files)],
        }

    def _tree(self, repo: Repo, rev: str) -> list[dict[str, Any]]:
        files = self._branch(repo, rev)
        out = []
        for p, content in sorted(files.items()):
            entry: dict[str, Any] = {
                "type": "file",
                "path": p,
                "size": len(content),
                "oid": git_blob_oid(content),
            }
            if self._is_lfs(p, len(content)):
                sha = hashlib.sha256(content).hexdigest()
                entry["lfs"] = {"oid": sha, "size": len(content), "pointerSize": 134}
            out.append(entry)
        return out

    def _create_branch(self, repo: Repo, branch: str, payload: dict[str, Any]) -> tuple[int, Any]:
        if branch in repo.branches:
            raise HttpError(409, f"Reference refs/heads/{branch} already exists")
        start = payload.get("startingPoint") or "main"
        repo.branches[branch] = dict(self._branch(repo, start))
        repo.heads[branch] = repo.heads[start]
        return 200, {}

    def _validate_yaml(self, content: str) -> tuple[int, Any]:
        if content.startswith("---\n"):
            end = content.find("\n---", 4)
            try:
                yaml.safe_load(content[4 : end if end >= 0 else None])
            except yaml.YAMLError as e:
                return 400, {"errors": [{"message": f"invalid YAML: {e}"}], "warnings": []}
        return 200, {"errors": [], "warnings": []}

    def _preupload(self, repo: Repo, rev: str, payload: dict[str, Any]) -> dict[str, Any]:
        files = self._branch(repo, rev)
        out = []
        for f in payload["files"]:
            path, size = f["path"], f["size"]
            old = files.get(path)
            out.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if self._is_lfs(path, size) else "regular",
                    "shouldIgnore": False,
                    "oid": self._oid(path, old) if old is not None else None,
                }
            )
        return {"files": out, "commitOid": repo.heads[rev]}

    def _lfs_batch(self, payload: dict[str, Any]) -> tuple[int, Any]:
        objects = []
        for obj in payload["objects"]:
            entry: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_store:
                entry["actions"] = {
                    "upload": {"href": f"{self.url}/_lfs/upload/{obj['oid']}"},
                    "verify": {"href": f"{self.url}/_lfs/verify"},
                }
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects}

    def _commit(self, repo: Repo, rev: str, body: bytes) -> dict[str, Any]:
        self.n_commit_requests += 1
        if self.n_commit_requests == self.reject_commit_at:
            raise HttpError(400, "commit refused by the test (simulated interruption)")
        files = dict(self._branch(repo, rev))
        summary, touched = "", []
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value["summary"]
                parent = value.get("parentCommit")
                if parent is not None and parent != repo.heads[rev]:
                    raise HttpError(412, "parent commit is not the head of the branch")
            elif key == "file":
                assert value["encoding"] == "base64"
                files[value["path"]] = base64.b64decode(value["content"])
                touched.append(value["path"])
            elif key == "lfsFile":
                if value["oid"] not in self.lfs_store:
                    raise HttpError(400, f"LFS object {value['oid']} was never uploaded")
                files[value["path"]] = self.lfs_store[value["oid"]]
                touched.append(value["path"])
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HttpError(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[value["path"]]
                touched.append(value["path"])
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for p in [p for p in files if p.startswith(prefix)]:
                    del files[p]
                    touched.append(p)
            else:
                raise HttpError(400, f"unknown commit line {key!r}")
        digest = hashlib.sha1(repo.heads[rev].encode() + summary.encode())
        for p in sorted(files):
            digest.update(p.encode() + b"\0" + hashlib.sha1(files[p]).digest())
        oid = digest.hexdigest()
        repo.branches[rev] = files
        repo.heads[rev] = oid
        repo.commits.append(Commit(oid, rev, summary, tuple(touched)))
        return {
            "success": True,
            "commitOid": oid,
            "commitUrl": f"{self.url}/datasets/{repo.repo_id}/commit/{oid}",
            "pullRequestUrl": None,
        }


def _read_body(h: BaseHTTPRequestHandler) -> bytes:
    if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                h.rfile.readline()  # the blank line after the last chunk
                return b"".join(chunks)
            chunks.append(h.rfile.read(size))
            h.rfile.readline()
    return h.rfile.read(int(h.headers.get("Content-Length") or 0))


def _send(
    h: BaseHTTPRequestHandler, status: int, obj: Any, headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(obj).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)
