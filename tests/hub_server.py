"""A local fake of the Hugging Face Hub HTTP API, so that push / download tests never leave the machine.

It implements just the routes the installed ``huggingface_hub`` (2.x, httpx2-based) calls for:
``create_repo``, ``upload_folder`` / ``upload_file`` / ``create_commit`` (preupload answers "lfs" for the
patterns in ``.gitattributes`` -- ``*.safetensors``, ``*.parquet`` -- as the Hub does, and "regular" for the
rest; LFS files go through the basic LFS batch API, Xet is switched off), ``hf_hub_download`` /
``snapshot_download`` (``resolve`` with ``X-Repo-Commit`` / ``ETag`` / ``Content-Length``, repo info,
recursive tree), ``list_repo_commits``, ``whoami``, ``validate-yaml``, and what ``datasets``'
``push_to_hub`` / ``load_dataset`` use. Repositories are model or dataset
repos with one branch, ``main``; every commit is kept, so any past revision can be read back. Blobs live
in a temporary folder, addressed by their git blob id.

Use the ``hub_server`` fixture (imported into ``tests/conftest.py``)::

    def test_push(hub_server):
        api = huggingface_hub.HfApi(token=hub_server.token)   # endpoint already points at the fake
        api.create_repo("me/model")

For the duration of the test the fixture points ``huggingface_hub`` at the server (``constants.ENDPOINT``,
the URL template, the module-level ``HfApi``), switches offline mode off, isolates the cache and the token
(no ``HF_TOKEN``, no stored login: pass ``hub_server.token`` explicitly or ``monkeypatch.setenv``), and
installs an HTTP client that refuses any host but the server: a request to huggingface.co fails the test.
Each test starts with an empty Hub. ``datasets`` reads its Hub settings at import: a test that pushes or
loads datasets must import ``datasets`` before the fixture runs (module level, or an earlier fixture).
"""
from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

USER = "fashrec-tester"
TOKEN = "hf_fakeTOKENforTESTSonly0123456789abcd"
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
LFS_PATTERNS = ("*.safetensors", "*.parquet", "*.arrow", "*.png", "*.jpg", "*.npy")
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()


def git_blob_id(data: bytes) -> str:
    """The id git (and the Hub's ETag for regular files) gives to a blob."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Commit:
    oid: str
    title: str
    message: str
    date: str
    files: dict[str, str]  # path -> blob id
    parent: str | None
    lfs: dict[str, str] = field(default_factory=dict)  # path -> sha256, for files stored with LFS


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)  # oldest first; the last one is main's head

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def commit_at(self, revision: str) -> Commit | None:
        if revision == "main":
            return self.head
        for commit in self.commits:
            if commit.oid == revision:
                return commit
        return None


class HubState:
    """Everything the fake Hub knows; guarded by one lock (requests are served by several threads)."""

    def __init__(self, *, blob_dir: Path) -> None:
        self.blob_dir = blob_dir
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path): never the headers, so never the token
        self.lfs_objects: dict[str, str] = {}  # sha256 -> blob id of LFS uploads
        self._counter = 0

    def reset(self) -> None:
        with self.lock:
            self.repos.clear()
            self.requests.clear()
            self.lfs_objects.clear()

    def put_blob(self, data: bytes) -> str:
        blob_id = git_blob_id(data)
        path = self.blob_dir / blob_id
        if not path.exists():
            tmp = path.with_suffix(f".tmp{threading.get_ident()}")
            tmp.write_bytes(data)
            tmp.replace(path)
        return blob_id

    def blob(self, blob_id: str) -> bytes:
        return (self.blob_dir / blob_id).read_bytes()

    def new_commit(self, repo: Repo, *, title: str, message: str, files: dict[str, str],
                   lfs: dict[str, str] | None = None) -> Commit:
        with self.lock:
            self._counter += 1
            parent = repo.commits[-1].oid if repo.commits else None
            seed = json.dumps([self._counter, parent, title, sorted(files.items())]).encode()
            commit = Commit(
                oid=hashlib.sha1(seed).hexdigest(),
                title=title,
                message=message,
                date=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                files=dict(files),
                parent=parent,
                lfs={p: sha for p, sha in (lfs or {}).items() if p in files},
            )
            repo.commits.append(commit)
            return commit

    # Convenience for tests -------------------------------------------------------------------------------

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Path -> content of every file of a revision."""
        commit = self.repo(repo_id, repo_type).commit_at(revision)
        assert commit is not None, f"no revision {revision!r} in {repo_id}"
        return {path: self.blob(blob_id) for path, blob_id in commit.files.items()}


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


_INFO = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/revision/([^/]+))?$")
_REPO_OP = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit|commits|tree)/([^/]+)(?:/(.*))?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_LFS_BATCH = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$")
_LFS_OBJECT = re.compile(r"^/_fake_lfs/([0-9a-f]{64})$")


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

    # --- plumbing --------------------------------------------------------------------------------------

    def log_message(self, format, *args):  # noqa: A002 - quiet: pytest captures nothing useful from it
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, *, head: bool = False) -> None:
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body and not head:
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _authenticated(self) -> bool:
        """True with the right token, False with none; a wrong token is an error, as on the Hub."""
        auth = self.headers.get("Authorization")
        if not auth:
            return False
        if auth != f"Bearer {self.server.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        return True

    def _repo(self, repo_type: str, repo_id: str, *, write: bool = False) -> Repo:
        authenticated = self._authenticated()
        if write and not authenticated:
            raise HubError(401, "You must be authenticated to write to a repository", "RepoNotFound")
        repo = self.server.state.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authenticated):
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        body = self._body() if method in ("POST", "PUT") else b""
        state = self.server.state
        with state.lock:
            state.requests.append((method, path))
        try:
            with state.lock:
                self._route(method, path, query, body)
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send(err.status, json.dumps({"error": err.message}).encode(), headers, head=method == "HEAD")

    def do_GET(self):  # noqa: N802
        self._dispatch("GET")

    def do_HEAD(self):  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self):  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self):  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self):  # noqa: N802
        self._dispatch("DELETE")

    # --- routes ----------------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict, body: bytes) -> None:
        endpoint = self.server.endpoint
        if path == "/api/whoami-v2" and method == "GET":
            if not self._authenticated():
                raise HubError(401, "Invalid credentials in Authorization header")
            return self._json(200, {
                "type": "user", "name": USER, "fullname": "fashrec tests", "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}},
            })
        if path == "/api/validate-yaml" and method == "POST":
            return self._json(200, {"errors": [], "warnings": []})
        if path == "/api/repos/create" and method == "POST":
            return self._create_repo(json.loads(body or b"{}"))
        if path == "/api/repos/delete" and method == "DELETE":
            payload = json.loads(body or b"{}")
            repo_id = f"{payload.get('organization') or USER}/{payload['name']}"
            self._repo(payload.get("type") or "model", repo_id, write=True)
            del self.server.state.repos[(payload.get("type") or "model", repo_id)]
            return self._json(200, {})

        if m := _INFO.match(path):
            if method not in ("GET", "HEAD"):
                raise HubError(405, f"{method} not allowed on {path}")
            repo_type, repo_id, revision = REPO_TYPES[m[1]], m[2], unquote(m[3] or "main")
            return self._info(repo_type, repo_id, revision, blobs=query.get("blobs") == ["True"] or "blobs" in query)
        if m := _REPO_OP.match(path):
            repo_type, repo_id, op, revision = REPO_TYPES[m[1]], m[2], m[3], unquote(m[4])
            sub = unquote(m[5] or "")
            if op == "preupload" and method == "POST":
                return self._preupload(repo_type, repo_id, revision, json.loads(body))
            if op == "commit" and method == "POST":
                return self._commit(repo_type, repo_id, revision, body)
            if op == "commits" and method == "GET":
                return self._commits(repo_type, repo_id, revision)
            if op == "tree" and method == "GET":
                recursive = (query.get("recursive") or ["false"])[0].lower() == "true"
                return self._tree(repo_type, repo_id, revision, sub, recursive)
        if (m := _LFS_BATCH.match(path)) and method == "POST":
            return self._lfs_batch(REPO_TYPES[m[1]] if m[1] else "model", m[2], json.loads(body))
        if (m := _LFS_OBJECT.match(path)) and method == "PUT":
            return self._lfs_put(m[1], body)
        if (m := _RESOLVE.match(path)) and method in ("GET", "HEAD"):
            repo_type = REPO_TYPES[m[1]] if m[1] else "model"
            return self._resolve(repo_type, m[2], unquote(m[3]), unquote(m[4]), head=method == "HEAD")
        if path.startswith("/api/telemetry/") or path == "/api/agent-harnesses":
            return self._json(200, {})
        raise HubError(404, f"fake Hub: no route for {method} {path} (tests/hub_server.py)")

    def _create_repo(self, payload: dict) -> None:
        if not self._authenticated():
            raise HubError(401, "You must be authenticated to create a repository")
        repo_type = payload.get("type") or "model"
        if repo_type not in URL_PREFIX:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        name = payload.get("name") or ""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", name):
            raise HubError(400, f"Invalid repo name {name!r}")
        repo_id = f"{payload.get('organization') or USER}/{name}"
        state = self.server.state
        url = f"{self.server.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in state.repos:
            return self._json(409, {"error": "You already created this repo", "url": url})
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private)
        state.repos[(repo_type, repo_id)] = repo
        state.new_commit(repo, title="initial commit", message="", files={".gitattributes": state.put_blob(GITATTRIBUTES)})
        return self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _revision(self, repo: Repo, revision: str) -> Commit:
        commit = repo.commit_at(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _info(self, repo_type: str, repo_id: str, revision: str, *, blobs: bool) -> None:
        state = self.server.state
        repo = self._repo(repo_type, repo_id)
        commit = self._revision(repo, revision)
        siblings = []
        for path, blob_id in sorted(commit.files.items()):
            sibling = {"rfilename": path}
            if blobs:
                size = (state.blob_dir / blob_id).stat().st_size
                sibling.update(size=size, blobId=blob_id)
                if path in commit.lfs:
                    sibling["lfs"] = {"sha256": commit.lfs[path], "size": size, "pointerSize": 134}
            siblings.append(sibling)
        info = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": repo_id.split("/")[0],
            "sha": commit.oid, "lastModified": commit.date, "createdAt": repo.commits[0].date,
            "private": repo.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0,
            "tags": [], "siblings": siblings,
        }
        if "README.md" in commit.files:  # the Hub lifts these out of the card's YAML
            card = _front_matter(state.blob(commit.files["README.md"]).decode("utf-8", "replace"), repo_type) or {}
            info["cardData"] = card or None
            info["tags"] = list(card.get("tags") or [])
            if repo_type == "model":
                info.update(library_name=card.get("library_name"), pipeline_tag=card.get("pipeline_tag"))
                if card.get("model-index"):
                    info["model-index"] = card["model-index"]
        self._json(200, info)

    def _preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        commit = self._revision(repo, revision)
        files = []
        for entry in payload.get("files", []):
            # As on the Hub: .gitattributes' LFS patterns go through LFS, the rest is sent inline in the commit.
            lfs = any(fnmatch.fnmatch(entry["path"].rsplit("/", 1)[-1], p) for p in LFS_PATTERNS)
            path = entry["path"]
            files.append({
                "path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                "oid": commit.lfs.get(path) if lfs else (None if path in commit.lfs else commit.files.get(path)),
            })
        self._json(200, {"files": files, "commitOid": commit.oid})

    def _commit(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> None:
        state = self.server.state
        repo = self._repo(repo_type, repo_id, write=True)
        head = self._revision(repo, revision)
        if revision != "main":
            raise HubError(400, "the fake Hub only commits to main")
        files, lfs = dict(head.files), dict(head.lfs)
        header: dict = {}
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
                parent = value.get("parentCommit")
                if parent is not None and parent != head.oid:
                    raise HubError(412, f"parentCommit {parent} is not the head of main ({head.oid})")
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                files[value["path"]] = state.put_blob(base64.b64decode(value["content"]))
                lfs.pop(value["path"], None)
            elif key == "lfsFile":
                sha = value.get("oid")
                if value.get("algo", "sha256") != "sha256" or sha not in state.lfs_objects:
                    raise HubError(400, f"LFS object {sha} for {value.get('path')} was never uploaded")
                files[value["path"]], lfs[value["path"]] = state.lfs_objects[sha], sha
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                for path in [p for p in files if p.startswith(prefix)]:
                    del files[path]
            else:
                raise HubError(400, f"the fake Hub does not support {key!r} operations")
        if not header.get("summary"):
            raise HubError(400, "commit summary is required")
        commit = state.new_commit(repo, title=header["summary"], message=header.get("description", ""), files=files,
                                  lfs=lfs)
        commit_url = f"{self.server.endpoint}/{URL_PREFIX[repo_type]}{repo_id}/commit/{commit.oid}"
        self._json(200, {"success": True, "commitOid": commit.oid, "commitUrl": commit_url, "pullRequestUrl": None})

    def _commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_type, repo_id)
        head = self._revision(repo, revision)
        history = repo.commits[: repo.commits.index(head) + 1]
        self._json(200, [
            {"id": c.oid, "title": c.title, "message": c.message, "date": c.date, "authors": [{"user": USER}]}
            for c in reversed(history)
        ])

    def _tree(self, repo_type: str, repo_id: str, revision: str, sub: str, recursive: bool) -> None:
        state = self.server.state
        commit = self._revision(self._repo(repo_type, repo_id), revision)
        prefix = sub.strip("/") + "/" if sub.strip("/") else ""
        entries: dict[str, dict] = {}
        for path, blob_id in sorted(commit.files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix):].split("/")
            # folders on the way to the file (all of them when recursive, the first one otherwise)
            for depth in range(1, len(rest) if recursive else min(len(rest), 2)):
                folder = prefix + "/".join(rest[:depth])
                entries.setdefault(folder, {"type": "directory", "path": folder, "oid": git_blob_id(folder.encode())})
            if recursive or len(rest) == 1:
                size = (state.blob_dir / blob_id).stat().st_size
                entries[path] = {"type": "file", "path": path, "oid": blob_id, "size": size}
                if path in commit.lfs:
                    entries[path]["lfs"] = {"oid": commit.lfs[path], "size": size, "pointerSize": 134}
        if prefix and not entries:
            raise HubError(404, f"{sub} does not exist on {revision}", "EntryNotFound")
        self._json(200, list(entries.values()))

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict) -> None:
        state = self.server.state
        self._repo(repo_type, repo_id, write=True)
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            raise HubError(400, "the fake Hub only takes basic LFS uploads")
        objects = []
        for obj in payload.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in state.lfs_objects:  # already stored: no action, the client skips it
                entry["actions"] = {"upload": {"href": f"{self.server.endpoint}/_fake_lfs/{obj['oid']}", "header": {}}}
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects})

    def _lfs_put(self, sha: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != sha:
            raise HubError(400, f"LFS upload does not match its sha256 {sha}")
        state = self.server.state
        state.lfs_objects[sha] = state.put_blob(body)
        self._send(200, b"", {"ETag": f'"{sha}"'})

    def _resolve(self, repo_type: str, repo_id: str, revision: str, filename: str, *, head: bool) -> None:
        state = self.server.state
        commit = self._revision(self._repo(repo_type, repo_id), revision)
        blob_id = commit.files.get(filename)
        if blob_id is None:
            raise HubError(404, f"{filename} does not exist on {revision}", "EntryNotFound")
        data = state.blob(blob_id)
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{commit.lfs.get(filename, blob_id)}"',  # LFS files: their sha256, as on the Hub
            "Accept-Ranges": "bytes",
        }
        status = 200
        if (rng := self.headers.get("Range")) and (m := re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())):
            start, end = int(m[1]), int(m[2]) if m[2] else len(data) - 1
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data, status = data[start : end + 1], 206
        self._send(status, data, headers, head=head)


def _front_matter(text: str, repo_type: str) -> dict | None:
    """The README's YAML metadata, as the Hub reports it in ``cardData`` (None when there is none or it is bad)."""
    from huggingface_hub import DatasetCard, ModelCard

    try:
        card = (DatasetCard if repo_type == "dataset" else ModelCard)(text, ignore_metadata_errors=True)
        return {k: v for k, v in card.data.to_dict().items() if v is not None} or None
    except Exception:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    token: str
    endpoint: str


@dataclass
class FakeHub:
    """What the ``hub_server`` fixture yields: where the fake Hub listens and how to look inside it."""

    endpoint: str
    token: str
    user: str
    state: HubState

    def repo_id(self, name: str) -> str:
        """A repo id in the test user's namespace."""
        return f"{self.user}/{name}"

    def files(self, repo_id: str, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        return self.state.files(repo_id, repo_type, revision)

    def commits(self, repo_id: str, repo_type: str = "model") -> list[Commit]:
        """Oldest first; the first one is the repo's initial commit (``.gitattributes``)."""
        return list(self.state.repo(repo_id, repo_type).commits)

    def has_repo(self, repo_id: str, repo_type: str = "model") -> bool:
        return (repo_type, repo_id) in self.state.repos


_RUNNING: dict[str, object] = {}


def start_server(blob_dir: Path) -> tuple[_Server, threading.Thread]:
    """Start the fake Hub on a free port of 127.0.0.1 in a daemon thread."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = HubState(blob_dir=blob_dir)
    server.token = TOKEN
    server.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-hub", daemon=True)
    thread.start()
    return server, thread


def _session_server(config: pytest.Config) -> _Server:
    """One server per test session, shut down when pytest ends."""
    if "server" not in _RUNNING:
        blob_dir = Path(tempfile.mkdtemp(prefix="fake-hub-"))
        server, thread = start_server(blob_dir)
        _RUNNING["server"] = server

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)
            shutil.rmtree(blob_dir, ignore_errors=True)
            _RUNNING.pop("server", None)

        config.add_cleanup(stop)
    return _RUNNING["server"]  # type: ignore[return-value]


@pytest.fixture
def hub_server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point huggingface_hub at a fresh, empty fake Hub for one test; fail if anything else is contacted."""
    import httpx2
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _http

    server = _session_server(request.config)
    server.state.reset()
    endpoint = server.endpoint
    host = urlsplit(endpoint).hostname

    monkeypatch.setenv("HF_ENDPOINT", endpoint)  # for subprocesses and libraries that read it late
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_URL_HOSTS", frozenset(constants.HF_URL_HOSTS | {host}))
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)  # the HfApi behind huggingface_hub.upload_folder & co
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setenv("HF_UPDATE_DOWNLOAD_COUNTS", "0")
    # `datasets` keeps its own copies of these, read at import: a test that pushes or loads datasets must
    # import `datasets` before this fixture runs (at module level, or in a fixture listed before hub_server).
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        monkeypatch.setattr(datasets_config, "HF_ENDPOINT", endpoint)
        monkeypatch.setattr(datasets_config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}")
        monkeypatch.setattr(datasets_config, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(datasets_config, "HF_DATASETS_OFFLINE", False)
        monkeypatch.setattr(datasets_config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
        monkeypatch.setattr(datasets_config, "HF_UPDATE_DOWNLOAD_COUNTS", False)  # a HEAD to S3
        monkeypatch.setattr(datasets_config, "USE_PARQUET_EXPORT", False)  # the dataset viewer's server
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)

    foreign: list[str] = []

    def only_the_fake_hub(req: httpx2.Request) -> None:
        if req.url.host != host or req.url.port != server.server_address[1]:
            foreign.append(f"{req.method} {req.url.scheme}://{req.url.host}{req.url.path}")
            raise RuntimeError(f"test tried to reach {req.url.host}: only the fake Hub at {endpoint} is allowed")

    def client_factory() -> httpx2.Client:
        return httpx2.Client(
            event_hooks={"request": [only_the_fake_hub, _http.hf_request_event_hook]},
            follow_redirects=True,
            timeout=30,
        )

    _http.set_client_factory(client_factory)
    try:
        yield FakeHub(endpoint=endpoint, token=server.token, user=USER, state=server.state)
    finally:
        _http.set_client_factory(_http.default_client_factory)
    assert not foreign, f"requests left the machine: {foreign}"


__all__ = ["FakeHub", "HubState", "git_blob_id", "hub_server", "start_server", "TOKEN", "USER"]
