"""What the fake Hub stores: repositories, their commits and the files of each commit."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone


@dataclass
class Commit:
    """One commit: its id, title and the full file tree it leaves behind."""

    oid: str
    title: str
    date: str
    files: dict[str, bytes]


@dataclass
class Repo:
    """A repository: `main` points at the last of its commits."""

    repo_type: str
    repo_id: str
    private: bool
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def snapshot(self, revision: str) -> Commit | None:
        """The commit a revision names: `main` or a commit id."""
        if revision == "main":
            return self.head
        return next((c for c in self.commits if c.oid == revision), None)


class HubState:
    """The repositories of one fake Hub, safe to use from the server's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.commits_made: list[tuple[str, str]] = []  # (repo_id, title), in order
        self.lfs_blobs: dict[str, bytes] = {}  # sha256 -> content uploaded through LFS

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def create(self, repo_type: str, repo_id: str, private: bool) -> Repo | None:
        """Creates an empty repository (with its initial commit); None if it exists."""
        with self._lock:
            if (repo_type, repo_id) in self.repos:
                return None
            repo = Repo(repo_type, repo_id, private)
            repo.commits.append(_commit("initial commit", {}, salt=repo_id))
            self.repos[(repo_type, repo_id)] = repo
            return repo

    def commit(
        self,
        repo: Repo,
        title: str,
        added: dict[str, bytes],
        deleted: list[str],
        parent: str | None,
    ) -> Commit | None:
        """Applies a commit on `main`; None when `parent` is given and is not the head."""
        with self._lock:
            if parent is not None and parent != repo.head.oid:
                return None
            files = dict(repo.head.files)
            for path in deleted:
                files = {
                    p: b for p, b in files.items() if p != path and not p.startswith(path + "/")
                }
            files.update(added)
            commit = _commit(title, files, salt=f"{repo.repo_id}:{len(repo.commits)}")
            repo.commits.append(commit)
            self.commits_made.append((repo.repo_id, title))
            return commit

    def add_files(self, repo_type: str, repo_id: str, files: dict[str, bytes]) -> None:
        """Test helper: creates the repository if needed and commits `files` to it."""
        repo = self.get(repo_type, repo_id) or self.create(repo_type, repo_id, private=False)
        assert repo is not None
        self.commit(repo, "add files", files, [], parent=None)


def _commit(title: str, files: dict[str, bytes], salt: str) -> Commit:
    digest = hashlib.sha1(salt.encode())
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + git_blob_oid(files[path]).encode())
    date = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return Commit(oid=digest.hexdigest(), title=title, date=date, files=files)


def git_blob_oid(content: bytes) -> str:
    """The git object id of a file (what the Hub reports as a regular file's `oid`)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def folders_of(files: dict[str, bytes]) -> set[str]:
    """Every folder that holds at least one of `files`."""
    folders = set()
    for path in files:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folders.add("/".join(parts[:depth]))
    return folders
