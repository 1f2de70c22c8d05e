"""The pinned public repositories of the real-repository benchmark, and reading their files with git.

A repositories folder (``--repos-dir``) holds each repository under one of these names,
as a clone or a bare git directory:

- ``owner+name/repo`` (a git directory, as snapshot tools that store ``owner+name`` lay them out),
- ``owner+name`` (a clone, or a bare git directory),
- ``owner/name`` (likewise).

Files are read at the pinned commit with ``git show``, whatever is checked out.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from completer.bench.repo_tasks import RepoTask, sha256



@dataclass(frozen=True)
class RepoSource:
    """One pinned repository: ``repo`` is owner/name on GitHub."""

    repo: str
    commit: str
    language: str

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}"


# ordinary library code, one repository per language, mid-sized, well known
REPOS = (
    RepoSource("pallets/click", "2c8cd3ac958a7eb316d67f2d316c27086c4c0369", "python"),
    RepoSource("spf13/cobra", "adbc8813901bba65827259daa8e22ff94ec1f30e", "go"),
    RepoSource("sindresorhus/ky", "3419113b48e034fdcf8fa6bd3be3da7b3d0d758f", "typescript"),
    RepoSource("BurntSushi/ripgrep", "3fce3b5bb0236da2df6d99672afb8a719642eca7", "rust"),
    RepoSource("google/gson", "9835b6f90192f79cdf5300c528fc6212455fb6c1", "java"),
)


class SourceError(Exception):
    """A repository, commit or file that cannot be read, or a file that is not the one recorded."""


def _is_git_dir(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


def find_git_dir(repos_dir: Path, repo: str) -> Path | None:
    """The git directory of ``repo`` (owner/name) under ``repos_dir``, or None when it is not there."""
    owner, name = repo.split("/", 1)
    for place in (repos_dir / f"{owner}+{name}" / "repo", repos_dir / f"{owner}+{name}", repos_dir / owner / name):
        if (place / ".git").is_dir() and _is_git_dir(place / ".git"):
            return place / ".git"
        if _is_git_dir(place):
            return place
    return None


def _git(git_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", f"--git-dir={git_dir}", *args], capture_output=True)


def has_commit(git_dir: Path, commit: str) -> bool:
    return _git(git_dir, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def list_paths(git_dir: Path, commit: str) -> list[str]:
    """Every file's path at ``commit``. Raises SourceError."""
    done = _git(git_dir, "ls-tree", "-r", "--name-only", commit)
    if done.returncode != 0:
        raise SourceError(f"{git_dir}: cannot list {commit}: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode("utf-8", errors="replace").splitlines()


def read_text(git_dir: Path, commit: str, path: str) -> str:
    """The UTF-8 text of ``path`` at ``commit``. Raises SourceError (absent, or not UTF-8 text)."""
    done = _git(git_dir, "show", f"{commit}:{path}")
    if done.returncode != 0:
        raise SourceError(f"{git_dir}: no {path} at {commit}: {done.stderr.decode(errors='replace').strip()}")
    try:
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SourceError(f"{path} at {commit} is not UTF-8 text") from err


def missing(repos_dir: Path, repos: list[dict]) -> list[dict]:
    """The repositories ({repo, commit}) that ``repos_dir`` lacks, or whose pinned commit it lacks."""
    out = []
    for r in repos:
        git_dir = find_git_dir(repos_dir, r["repo"])
        if git_dir is None or not has_commit(git_dir, r["commit"]):
            out.append(r)
    return out


def missing_message(repos_dir: Path, absent: list[dict]) -> str:
    """What to run to bring the absent repositories into ``repos_dir``."""
    lines = [f"the benchmark's repositories are not all in {repos_dir} (each as owner+name or owner/name, "
             "a clone or a bare git directory, holding the pinned commit):"]
    for r in absent:
        owner, name = r["repo"].split("/", 1)
        where = repos_dir / f"{owner}+{name}"
        lines.append(f"  {r['repo']} at {r['commit']}:")
        lines.append(f"    git clone https://github.com/{r['repo']} {where}")
        lines.append(f"    git -C {where} fetch origin {r['commit']}  # only if the clone lacks that commit")
    return "\n".join(lines)


def repo_files(git_dir: Path, commit: str, keep) -> list[tuple[str, str]]:
    """(path, text) of the files at ``commit`` whose path ``keep`` accepts (files that are not UTF-8 skipped)."""
    out = []
    for path in list_paths(git_dir, commit):
        if keep(path):
            try:
                out.append((path, read_text(git_dir, commit, path)))
            except SourceError:
                continue
    return out


def task_texts(repos_dir: Path, tasks: list[RepoTask]) -> dict[tuple[str, str, str], str]:
    """The text of each task's file, keyed by (repo, commit, path), checked against the recorded sha256.

    Raises SourceError naming every file that is absent or differs (a wrong checkout is never scored).
    """
    texts, problems = {}, []
    for t in tasks:
        key = (t.repo, t.commit, t.path)
        if key in texts:
            continue
        git_dir = find_git_dir(repos_dir, t.repo)
        try:
            if git_dir is None:
                raise SourceError(f"{t.repo} is not in {repos_dir}")
            text = read_text(git_dir, t.commit, t.path)
        except SourceError as err:
            problems.append(str(err))
            continue
        if sha256(text) != t.sha256 or t.end > len(text):
            problems.append(f"{t.repo} {t.path} at {t.commit}: the file differs from the one the holes were cut "
                            f"in (sha256 {sha256(text)[:12]}…, recorded {t.sha256[:12]}…)")
            continue
        texts[key] = text
    if problems:
        raise SourceError("cannot score these files:\n  " + "\n  ".join(problems))
    return texts


def worktree(repos_dir: Path, repo: str, commit: str, into: Path) -> Path:
    """``repo``'s files at ``commit``, extracted with ``git archive`` into ``into``/name: the folder an
    editor opens, for workspace snippets to read. Raises SourceError."""
    git_dir = find_git_dir(repos_dir, repo)
    if git_dir is None:
        raise SourceError(f"{repo} is not in {repos_dir}")
    target = into / repo.split("/", 1)[1]
    target.mkdir(parents=True, exist_ok=True)
    archive = _git(git_dir, "archive", "--format=tar", commit)
    if archive.returncode != 0:
        raise SourceError(f"{git_dir}: cannot archive {commit}: {archive.stderr.decode(errors='replace').strip()}")
    untar = subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, capture_output=True)
    if untar.returncode != 0:
        raise SourceError(f"cannot extract {repo} into {target}: {untar.stderr.decode(errors='replace').strip()}")
    return target
