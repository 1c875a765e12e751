"""A local Git repository that Argo CD's repo server reads through a ``file://`` URL.

The GitOps tests need "a repository users push to": commits that change a manifest, a commit
that removes one. ``GitRepo`` is a plain ``git`` working tree on the local disk with a
``main`` branch; Argo CD clones it with the same ``git`` binary the rest of the machine uses
(Debian's), so there is no Git server to start and nothing listens on a port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

GIT = shutil.which("git") or "/usr/bin/git"

_IDENTITY = {
    "GIT_AUTHOR_NAME": "Pynomaly Tests",
    "GIT_AUTHOR_EMAIL": "tests@pynomaly.invalid",
    "GIT_COMMITTER_NAME": "Pynomaly Tests",
    "GIT_COMMITTER_EMAIL": "tests@pynomaly.invalid",
}


class GitRepo:
    """A working tree with branch ``main``; ``url`` is what an Application's ``repoURL`` gets."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def url(self) -> str:
        """``file:///...`` URL of the repository."""
        return self.path.resolve().as_uri()

    def git(self, *args: str) -> str:
        """Run ``git ARGS`` in the tree (no user or system config) and return its stdout."""
        env = {
            **os.environ,
            **_IDENTITY,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
        done = subprocess.run(
            [GIT, *args],
            cwd=self.path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done.stdout.strip()

    @classmethod
    def create(cls, path: Path, *, copy: dict[str, Path], message: str) -> GitRepo:
        """A new repository at ``path`` whose first commit holds ``copy`` (target -> source dir)."""
        path.mkdir(parents=True)
        for target, source in copy.items():
            shutil.copytree(source, path / target)
        repo = cls(path)
        repo.git("init", "--quiet", "--initial-branch=main")
        repo.commit(message)
        return repo

    def write(self, relative: str, text: str) -> None:
        """Write one file in the tree (not yet committed)."""
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def read(self, relative: str) -> str:
        """One file of the tree as it is now."""
        return (self.path / relative).read_text()

    def remove(self, relative: str) -> None:
        """Delete one file from the tree (not yet committed)."""
        (self.path / relative).unlink()

    def commit(self, message: str) -> str:
        """Commit everything in the tree; return the new commit's SHA."""
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        """SHA of ``main``'s tip."""
        return self.git("rev-parse", "HEAD")


__all__ = ["GitRepo"]
