"""The HTTP side of the fake Hub: just enough of the Hugging Face Hub API for the real
`huggingface_hub` and `datasets` clients (pointed at it with `HF_ENDPOINT`) to create dataset
repositories, commit files to them, list and read them (whole or by byte range).

Like the real Hub, the preupload answer asks for data files (parquet, arrow, anything
binary) to go through the git LFS batch API (basic transfer: one PUT per file, before the
commit, which then names them by sha256); text files travel inline in the commit,
base64-encoded. It speaks no Xet: clients must run with `HF_HUB_DISABLE_XET=1`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .repos import Commit, HubState, Repo, folders_of, git_blob_oid

_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_REPO = r"(?P<kind>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"
_API_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/api/whoami-v2$"), "whoami"),
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("GET", re.compile(rf"^/api/{_REPO}(?:/revision/(?P<rev>[^/]+))?$"), "repo_info"),
    ("GET", re.compile(rf"^/api/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$"), "tree"),
    ("POST", re.compile(rf"^/api/{_REPO}/paths-info/(?P<rev>[^/]+)$"), "paths_info"),
    ("POST", re.compile(rf"^/api/{_REPO}/preupload/(?P<rev>[^/]+)$"), "preupload"),
    ("POST", re.compile(rf"^/api/{_REPO}/commit/(?P<rev>[^/]+)$"), "commit"),
]
_LFS_BATCH = re.compile(
    r"^/(?:(?P<kind>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$"
)
_LFS_OBJECT = re.compile(r"^/_lfs/(?P<oid>[0-9a-f]{64})$")
_RESOLVE = re.compile(
    r"^/(?:(?P<kind>datasets|spaces)/)?(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$"
)
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
USER = "potstill-tester"


class HubServer(ThreadingHTTPServer):
    """A threaded HTTP server holding the Hub's state."""

    daemon_threads = True

    def __init__(self, state: HubState, token: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        self.token = token
        self.unknown_routes: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- dispatch ------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        self.body = self._read_body()
        path = split.path
        if method == "POST" and (match := _LFS_BATCH.match(path)):
            self._lfs_batch(match)
            return
        if method == "PUT" and (match := _LFS_OBJECT.match(path)):
            self._lfs_put(match)
            return
        if method in ("GET", "HEAD"):
            match = _RESOLVE.match(path)
            if match and not path.startswith("/api/"):
                self._resolve(method, match)
                return
        for route_method, pattern, handler in _API_ROUTES:
            match = pattern.match(path)
            if match and route_method == method:
                getattr(self, f"_{handler}")(match)
                return
        if path != "/api/agent-harnesses":  # huggingface_hub's optional registry fetch
            self.server.unknown_routes.append(f"{method} {path}")
        self._error(404, "NotFound", f"Not implemented by the fake Hub: {method} {path}")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    # -- helpers -------------------------------------------------------------------------

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization", "")
        return header == f"Bearer {self.server.token}"

    def _repo(self, match: re.Match[str], write: bool = False) -> Repo | None:
        repo = self.server.state.get(_TYPES[match["kind"] or "models"], match["repo"])
        if repo is not None and (repo.private or write) and not self._authorized():
            if write and not repo.private:
                self._error(401, "", "Invalid credentials in Authorization header")
                return None
            repo = None
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {match['repo']} not found.")
        return repo

    def _snapshot(self, repo: Repo, revision: str) -> Commit | None:
        commit = repo.snapshot(unquote(revision))
        if commit is None:
            self._error(404, "RevisionNotFound", f"Revision {unquote(revision)} not found.")
        return commit

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        head_only: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head_only and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload: Any, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode())

    def _error(self, status: int, code: str, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers=headers)

    # -- account and repositories ----------------------------------------------------------

    def _whoami(self, match: re.Match[str]) -> None:
        if not self._authorized():
            self._error(401, "", "Invalid credentials in Authorization header")
            return
        self._json({"type": "user", "name": USER, "orgs": [], "auth": {"type": "access_token"}})

    def _create_repo(self, match: re.Match[str]) -> None:
        if not self._authorized():
            self._error(401, "", "Invalid credentials in Authorization header")
            return
        body = json.loads(self.body or b"{}")
        namespace = body.get("organization") or USER
        repo_id = f"{namespace}/{body['name']}"
        repo_type = body.get("type") or "model"
        private = bool(body.get("private")) or body.get("visibility") == "private"
        created = self.server.state.create(repo_type, repo_id, private)
        url = f"{self.server.url}/{'' if repo_type == 'model' else repo_type + 's/'}{repo_id}"
        if created is None:
            self._send(
                409, json.dumps({"error": "You already created this repo", "url": url}).encode()
            )
            return
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, match: re.Match[str]) -> None:
        self._json({"errors": [], "warnings": []})

    def _repo_info(self, match: re.Match[str]) -> None:
        repo = self._repo(match)
        if repo is None:
            return
        commit = self._snapshot(repo, match["rev"] or "main")
        if commit is None:
            return
        self._json(
            {
                "id": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": commit.oid,
                "private": repo.private,
                "lastModified": commit.date,
                "tags": [],
                "downloads": 0,
                "likes": 0,
                "siblings": [
                    {"rfilename": path, "size": len(data)}
                    for path, data in sorted(commit.files.items())
                ],
            }
        )

    # -- reading files ---------------------------------------------------------------------

    def _entry(self, commit: Commit, path: str, expand: bool) -> dict[str, Any]:
        last_commit = {"id": commit.oid, "title": commit.title, "date": commit.date}
        if path in commit.files:
            data = commit.files[path]
            entry: dict[str, Any] = {
                "type": "file",
                "path": path,
                "size": len(data),
                "oid": git_blob_oid(data),
            }
            if stored_as_lfs(path, data):
                entry["lfs"] = {"oid": sha256(data), "size": len(data), "pointerSize": 134}
        else:
            entry = {
                "type": "directory",
                "path": path,
                "oid": git_blob_oid(path.encode()),
                "size": 0,
            }
        if expand:
            entry["lastCommit"] = last_commit
        return entry

    def _tree(self, match: re.Match[str]) -> None:
        repo = self._repo(match)
        commit = repo and self._snapshot(repo, match["rev"])
        if commit is None:
            return
        base = unquote(match["path"] or "").strip("/")
        recursive = self.query.get("recursive", ["False"])[0].lower() == "true"
        expand = self.query.get("expand", ["False"])[0].lower() == "true"
        folders = folders_of(commit.files)
        if base and base not in folders:
            self._error(404, "EntryNotFound", f"{base} does not exist on {match['rev']}")
            return
        prefix = f"{base}/" if base else ""
        entries = []
        for path in sorted([*commit.files, *folders]):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            if recursive or "/" not in rest:
                entries.append(self._entry(commit, path, expand))
        self._json(entries)

    def _paths_info(self, match: re.Match[str]) -> None:
        repo = self._repo(match)
        commit = repo and self._snapshot(repo, match["rev"])
        if commit is None:
            return
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = json.loads(self.body or b"{}")
            paths, expand = form.get("paths", []), bool(form.get("expand"))
        else:
            fields = parse_qs(self.body.decode())
            paths = fields.get("paths", [])
            expand = fields.get("expand", ["False"])[0].lower() == "true"
        folders = folders_of(commit.files)
        known = [
            p.strip("/") for p in paths if p.strip("/") in commit.files or p.strip("/") in folders
        ]
        self._json([self._entry(commit, path, expand) for path in known])

    def _resolve(self, method: str, match: re.Match[str]) -> None:
        repo = self._repo(match)
        commit = repo and self._snapshot(repo, match["rev"])
        if commit is None:
            return
        path = unquote(match["path"])
        if path not in commit.files:
            self._error(404, "EntryNotFound", f"{path} does not exist on {match['rev']}")
            return
        data = commit.files[path]
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{sha256(data) if stored_as_lfs(path, data) else git_blob_oid(data)}"',
            "Accept-Ranges": "bytes",
        }
        requested = _RANGE.fullmatch(self.headers.get("Range", "").strip())
        if requested and data:
            first, last = requested.groups()
            if first == "":
                start, end = max(0, len(data) - int(last)), len(data) - 1
            else:
                start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            if start >= len(data):
                self._send(
                    416,
                    b"",
                    headers={"Content-Range": f"bytes */{len(data)}"},
                    head_only=method == "HEAD",
                )
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._send(
                206, data[start : end + 1], "application/octet-stream", headers, method == "HEAD"
            )
            return
        self._send(200, data, "application/octet-stream", headers, method == "HEAD")

    # -- writing ---------------------------------------------------------------------------

    def _preupload(self, match: re.Match[str]) -> None:
        repo = self._repo(match, write=True)
        if repo is None:
            return
        files = json.loads(self.body or b"{}").get("files", [])
        self._json(
            {
                "files": [
                    {
                        "path": f["path"],
                        "uploadMode": "lfs"
                        if stored_as_lfs(f["path"], base64.b64decode(f["sample"]))
                        else "regular",
                        "shouldIgnore": False,
                        "oid": None,
                    }
                    for f in files
                ],
                "commitOid": repo.head.oid,
            }
        )

    def _commit(self, match: re.Match[str]) -> None:
        repo = self._repo(match, write=True)
        if repo is None:
            return
        if unquote(match["rev"]) != "main":
            self._error(400, "", "The fake Hub commits to `main` only.")
            return
        title, parent = "", None
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        for line in self.body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                title, parent = value.get("summary", ""), value.get("parentCommit")
            elif item["key"] == "file":
                added[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                blob = self.server.state.lfs_blobs.get(value["oid"])
                if blob is None:
                    self._error(400, "", f"LFS object {value['oid']} was never uploaded.")
                    return
                added[value["path"]] = blob
            elif item["key"] in ("deletedFile", "deletedFolder"):
                deleted.append(value["path"].rstrip("/"))
            else:
                self._error(400, "", f"The fake Hub does not accept {item['key']!r} commit items.")
                return
        commit = self.server.state.commit(repo, title, added, deleted, parent)
        if commit is None:
            self._error(412, "", "A commit happened since the parent commit; retry.")
            return
        prefix = "" if repo.repo_type == "model" else f"{repo.repo_type}s/"
        self._json(
            {
                "commitUrl": f"{self.server.url}/{prefix}{repo.repo_id}/commit/{commit.oid}",
                "commitOid": commit.oid,
                "pullRequestUrl": None,
            }
        )

    def _lfs_batch(self, match: re.Match[str]) -> None:
        repo = self._repo(match, write=True)
        if repo is None:
            return
        objects = []
        for item in json.loads(self.body or b"{}").get("objects", []):
            entry: dict[str, Any] = {"oid": item["oid"], "size": item["size"]}
            if item["oid"] not in self.server.state.lfs_blobs:
                entry["actions"] = {"upload": {"href": f"{self.server.url}/_lfs/{item['oid']}"}}
            objects.append(entry)
        self._json({"transfer": "basic", "objects": objects})

    def _lfs_put(self, match: re.Match[str]) -> None:
        if sha256(self.body) != match["oid"]:
            self._error(400, "", "The uploaded content does not match its sha256.")
            return
        self.server.state.lfs_blobs[match["oid"]] = self.body
        self._send(200, b"")


def stored_as_lfs(path: str, sample: bytes) -> bool:
    """Whether the Hub keeps a file in LFS: data files and anything binary."""
    return path.endswith((".parquet", ".arrow")) or b"\0" in sample


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
