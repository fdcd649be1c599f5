"""Snapshots of the curation marts: every build writes a fresh copy, readers keep the last complete one.

DuckDB lets one process write a database file, or many read it, never both. So a curate never
writes the file readers open (``lake.database_path()``). It builds into a new folder
``<snapshots>/.build-<id>/`` holding a copy of the published database (the incremental answer
dictionaries come with it) and the build's exports (the SFT strata, ``curation_vars.json``).
Only when the build and its tests succeeded is the folder renamed to ``<snapshots>/<id>/`` and
published: its database file is hard-linked over ``database_path()`` by ``os.replace`` (a reader
that has the old file open keeps reading it; a new reader opens the new one). Each stratum is a
folder of Parquet segments (``STRATA_DIRS``, written by dbt_project/models/marts/exports/sft_exports.py):
its files are hard-linked into ``<exports>/segments/<id>/<stratum>/`` and the published
``<exports>/<stratum>`` is a symlink swapped onto that folder by ``os.replace``, so a reader sees
one build's segments, never a mix; then the vars and, last, ``curation_build.json`` (every
segment's sha256). The previous build's segment folder stays for readers still listing it; older
ones are deleted. A failed or killed build
leaves a ``.build-*`` folder that the next curate deletes, and the previous snapshot untouched;
a publish interrupted half-way is completed by the next curate (``recover``). One curate at a
time: ``build_lock`` (an flock that dies with its holder) names the running one to a second.
The last ``REASONLITE_KEEP_SNAPSHOTS`` (default 3) snapshots are kept.

Public API: :func:`build_lock`, :func:`new_build`, :class:`Build`, :func:`publish`,
:func:`recover`, :func:`prune`, :func:`published_build`,
:func:`incremental_definitions`, :func:`published_definitions`, :func:`check_published_exports`,
:func:`stratum_segments`, :func:`strata_files`, :data:`BUILD_FILE`, :data:`STRATA_DIRS`, :data:`VARS_FILE`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from warehouse import lake
from warehouse.errors import UserError

# Each stratum is a folder of part-<build_id>-<n>.parquet segments plus INDEX_FILE (not Parquet,
# so a reader's *.parquet glob never takes it for rows).
STRATA_DIRS = ("sft_short_cot", "sft_long_cot")
SEGMENT_GLOB = "part-*.parquet"
INDEX_FILE = "_index.arrow"
# Where published segments live: <exports>/segments/<build_id>/<stratum>/ (hard links).
SEGMENTS_DIR = "segments"
# The single-file strata of earlier versions: deleted from the exports folder on publish. Kept
# only for the readers not yet moved to the folders (tests/training/sft_data.py).
STRATA_FILES = ("sft_short_cot.parquet", "sft_long_cot.parquet")
VARS_FILE = "curation_vars.json"
# Which build the published strata and vars come from, with each stratum's sha256: written last.
BUILD_FILE = "curation_build.json"
DEFAULT_KEEP = 3


def keep_count() -> int:
    text = os.environ.get("REASONLITE_KEEP_SNAPSHOTS", str(DEFAULT_KEEP))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"REASONLITE_KEEP_SNAPSHOTS={text!r}: must be an integer >= 1")
    return value


# ----------------------------------------------------------------------------------------- the lock


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """Hold the one curate lock, or refuse in one line naming the curate that holds it.

    flock on ``<snapshots>/curate.lock``: released by the kernel when its holder dies (no stale
    lock after a kill), and honoured across hosts on NFS (Linux maps it to a POSIX lock).
    """
    folder = lake.snapshots_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "curate.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown process"
            raise UserError(f"another curate is building this warehouse ({holder}); "
                            "wait for it to finish, then run curate again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, (f"pid {os.getpid()} on {socket.gethostname()}, "
                       f"started {datetime.now(UTC).isoformat(timespec='seconds')}").encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


# ---------------------------------------------------------------------------------------- a build


@dataclass
class Build:
    build_id: str
    folder: Path  # <snapshots>/.build-<id> while building, <snapshots>/<id> once complete
    started_at: str

    @property
    def database(self) -> Path:
        # Same file name as the published database: DuckDB names the catalog after it.
        return self.folder / lake.database_path().name

    @property
    def exports(self) -> Path:
        return self.folder / "exports"

    def has_strata(self) -> bool:
        return all((self.exports / name).is_dir() for name in STRATA_DIRS)


def stratum_segments(folder: Path) -> list[Path]:
    """The Parquet segments of a stratum folder, in name order (build id, then number)."""
    return sorted(folder.glob(SEGMENT_GLOB))


def strata_files(exports: Path) -> list[str]:
    """The strata's files (segments and index) under ``exports``, as paths relative to it."""
    out = []
    for name in STRATA_DIRS:
        folder = exports / name
        out += [f"{name}/{p.name}" for p in stratum_segments(folder)]
        if (folder / INDEX_FILE).exists():
            out.append(f"{name}/{INDEX_FILE}")
    return out


def new_build(carry: str = "incremental") -> Build:
    """Start a build folder with what the build needs from the published database:
    ``"all"`` a copy of the file (a ``--select`` build keeps every mart it does not rebuild),
    ``"incremental"`` only the incremental models' tables (the answer dictionaries), copied into a
    fresh file so that the free space of replaced tables is not carried from build to build,
    ``"nothing"`` (``--full-refresh``). Call under ``build_lock``: leftover ``.build-*`` folders
    of killed builds are deleted here."""
    root = lake.snapshots_dir()
    for stale in root.glob(".build-*"):
        shutil.rmtree(stale, ignore_errors=True)
    now = datetime.now(UTC)
    build_id = f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"
    build = Build(build_id, root / f".build-{build_id}", now.isoformat(timespec="seconds"))
    build.exports.mkdir(parents=True)
    published = lake.database_path()
    if not published.exists() or carry == "nothing":
        return build
    if carry == "incremental":
        _copy_tables(published, build.database, incremental_models())
        return build
    shutil.copyfile(published, build.database)
    wal = published.with_name(published.name + ".wal")  # left by an in-place build of older versions
    if wal.exists():
        shutil.copyfile(wal, build.database.with_name(build.database.name + ".wal"))
    return build


def incremental_models(project_dir: Path | None = None) -> list[str]:
    """Models whose table grows from build to build (``materialized='incremental'`` in dbt_project)."""
    from warehouse.curate import PROJECT_DIR

    pattern = re.compile(r"materialized\s*=\s*['\"]incremental['\"]")
    models = Path(project_dir or PROJECT_DIR) / "models"
    return sorted(p.stem for p in models.rglob("*.sql") if pattern.search(p.read_text()))


# What the incremental models' rows are computed from besides their own SQL: the grader (Python
# behind the DuckDB functions) and the libraries it and the SQL lean on. A row of theirs stays right
# only while all of it is unchanged.
GRADER_SOURCES = ("evaluation/grading", "warehouse/dbt_plugin.py")
DEFINITION_LIBRARIES = ("math-verify", "sympy", "latex2sympy2_extended", "antlr4-python3-runtime", "duckdb")
_REF = re.compile(r"""\bref\(\s*['"]([A-Za-z0-9_]+)['"]\s*\)""")


def incremental_definitions(project_dir: Path | None = None, code_root: Path | None = None) -> str:
    """A digest of everything the incremental models' stored rows depend on: the SQL of those models
    and of every model they read (refs, transitively), the project's macros, the grader's code and
    the versions of its libraries. dbt keeps an incremental table's old rows whatever changed, so
    `reasonlite curate` compares this digest with the published build's and rebuilds those tables
    when it differs (an old answer key under a new grader would otherwise vote on for good)."""
    from importlib import metadata

    from warehouse.curate import PROJECT_DIR

    project_dir = Path(project_dir or PROJECT_DIR)
    code_root = Path(code_root or Path(__file__).resolve().parent.parent)
    models = {p.stem: p for p in (project_dir / "models").rglob("*.sql")}
    models.update({p.stem: p for p in (project_dir / "models").rglob("*.py")})
    todo = [name for name in incremental_models(project_dir) if name in models]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += [ref for ref in _REF.findall(models[name].read_text()) if ref in models]
    files = [models[name] for name in seen]
    files += sorted((project_dir / "macros").rglob("*.sql"))
    for source in GRADER_SOURCES:
        path = code_root / source
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    named = {(f"dbt_project/{p.relative_to(project_dir).as_posix()}" if p.is_relative_to(project_dir)
              else p.relative_to(code_root).as_posix()): p for p in files}
    digest = hashlib.sha256()
    for name in sorted(named):  # by name within the repository: the same wherever it is checked out
        digest.update(f"{name}\0".encode() + named[name].read_bytes() + b"\0")
    for library in DEFINITION_LIBRARIES:
        try:
            version = metadata.version(library)
        except metadata.PackageNotFoundError:
            version = "-"
        digest.update(f"{library}=={version}\0".encode())
    return digest.hexdigest()[:16]


def published_definitions() -> str | None:
    """The ``incremental_definitions`` the published database was built with; None when there is no
    published database or it predates the record (its incremental tables' origin is unknown)."""
    import duckdb

    path = lake.database_path()
    if not path.exists():
        return None
    con = duckdb.connect(str(path), read_only=True)
    try:
        row = con.execute("SELECT definitions FROM main.curation_build LIMIT 1").fetchone()
    except duckdb.Error:  # no build record, or one without the column (an earlier version)
        return None
    finally:
        con.close()
    return row[0] if row else None


def _copy_tables(source: Path, database: Path, tables: list[str]) -> None:
    """A new ``database`` holding ``tables`` of ``source``'s main schema (those it has)."""
    import duckdb

    con = duckdb.connect(str(database))
    try:
        con.execute(f"ATTACH {_literal(str(source))} AS previous (READ_ONLY)")
        present = {name for (name,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'previous' AND schema_name = 'main'"
        ).fetchall()}
        for table in tables:
            if table in present:
                con.execute(f'CREATE TABLE main."{table}" AS SELECT * FROM previous.main."{table}"')
        con.execute("DETACH previous")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _segment_hashes(exports: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every segment: a segment carried by hard link from the published build
    keeps the hash that build recorded (same inode, same bytes), so an incremental build hashes only
    what it wrote."""
    known = (published_build() or {}).get("strata") or {}
    published = lake.exports_dir()
    out = {}
    for name in STRATA_DIRS:
        for path in stratum_segments(exports / name):
            relative = f"{name}/{path.name}"
            entry = known.get(relative)
            if isinstance(entry, dict) and _same_file(path, published / relative) \
                    and entry.get("bytes") == path.stat().st_size and entry.get("sha256"):
                out[relative] = {"sha256": entry["sha256"], "bytes": entry["bytes"]}
            else:
                out[relative] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
    return out


def finish(build: Build, record: dict[str, Any]) -> Build:
    """Seal a successful build: write its record (and every segment's hash) and make it a snapshot."""
    import duckdb

    strata = _segment_hashes(build.exports) if build.has_strata() else {}
    record = {"build_id": build.build_id, "started_at": build.started_at,
              "finished_at": datetime.now(UTC).isoformat(timespec="seconds"), **record, "strata": strata}
    if build.database.exists():
        # Readers ask the database itself which build they read; CHECKPOINT leaves no WAL behind.
        con = duckdb.connect(str(build.database))
        try:
            con.execute("CREATE OR REPLACE TABLE main.curation_build AS SELECT * FROM (VALUES (?, ?, ?, ?, ?, ?)) "
                        "AS t(build_id, invocation_id, started_at, finished_at, vars, definitions)",
                        [build.build_id, record.get("invocation_id"), record["started_at"],
                         record["finished_at"], json.dumps(record.get("vars") or {}, sort_keys=True, default=str),
                         record.get("definitions")])
            con.execute("CHECKPOINT")
        finally:
            con.close()
    if strata:
        (build.exports / BUILD_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    (build.folder / "build.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    final = build.folder.with_name(build.build_id)
    os.replace(build.folder, final)
    lake._fsync_dir(final.parent)
    return Build(build.build_id, final, build.started_at)


# -------------------------------------------------------------------------------------- publishing


def _replace_with_link(source: Path, target: Path) -> None:
    """Make ``target`` the file ``source`` atomically: hard link (no copy) when on one filesystem."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex}-{target.name}")
    try:
        try:
            os.link(source, tmp)
        except OSError:  # another filesystem, or no hard links: copy, then rename
            shutil.copyfile(source, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _segment_store(build_id: str) -> Path:
    return lake.exports_dir() / SEGMENTS_DIR / build_id


def _publish_strata(snapshot: Build) -> None:
    """Link the snapshot's strata into the exports' segment store, then swap each stratum's symlink
    onto its folder there (one rename: a reader lists one build's segments or the other's)."""
    exports = lake.exports_dir()
    store = _segment_store(snapshot.build_id)
    replaced = set()
    for name in STRATA_DIRS:
        folder = store / name
        folder.mkdir(parents=True, exist_ok=True)
        wanted = {p.name for p in (*stratum_segments(snapshot.exports / name), snapshot.exports / name / INDEX_FILE)
                  if p.exists()}
        for stale in folder.iterdir():  # left by an interrupted publish of this build
            if stale.name not in wanted:
                stale.unlink()
        for file in sorted(wanted):
            if not _same_file(snapshot.exports / name / file, folder / file):
                _replace_with_link(snapshot.exports / name / file, folder / file)
        lake._fsync_dir(folder)
        link = exports / name
        if link.is_symlink():
            replaced.add(Path(os.readlink(link)).parent.name)
        elif link.is_dir():  # a plain folder (written by hand or by a test): moved aside, then deleted
            aside = exports / SEGMENTS_DIR / f".replaced-{uuid.uuid4().hex}"
            os.replace(link, aside)
            shutil.rmtree(aside, ignore_errors=True)
        tmp = exports / f".tmp-{uuid.uuid4().hex}-{name}"
        os.symlink(Path(SEGMENTS_DIR) / snapshot.build_id / name, tmp)
        os.replace(tmp, link)
    for legacy in STRATA_FILES:  # single-file strata of earlier versions would be read as current
        (exports / legacy).unlink(missing_ok=True)
    lake._fsync_dir(exports)
    # Keep the store just replaced (a reader may be listing it), delete older ones.
    for old in (exports / SEGMENTS_DIR).iterdir():
        if old.name not in replaced and old.name != snapshot.build_id:
            shutil.rmtree(old, ignore_errors=True)


def publish(snapshot: Build) -> None:
    """Make a complete snapshot what readers see: the database, then (if it made them) the strata,
    the vars and, last, the build record that ties them together."""
    if snapshot.database.exists():
        _replace_with_link(snapshot.database, lake.database_path())
    if snapshot.has_strata():
        exports = lake.exports_dir()
        _publish_strata(snapshot)
        for name in (VARS_FILE, BUILD_FILE):
            if (snapshot.exports / name).exists():
                _replace_with_link(snapshot.exports / name, exports / name)
        lake._fsync_dir(exports)
    lake._fsync_dir(lake.database_path().parent)


def snapshots() -> list[Build]:
    """Complete snapshots, oldest first."""
    root = lake.snapshots_dir()
    if not root.exists():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        record = _read_json(folder / "build.json")
        if record:
            found.append(Build(folder.name, folder, record.get("started_at", "")))
    return found


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def recover() -> list[str]:
    """Finish a publish that a kill interrupted: the newest snapshot's database, and the newest
    strata-making snapshot's exports, must be the published ones. Returns what was re-published."""
    done = []
    complete = snapshots()
    if complete and complete[-1].database.exists() and not _same_file(complete[-1].database, lake.database_path()):
        _replace_with_link(complete[-1].database, lake.database_path())
        done.append(f"database of build {complete[-1].build_id}")
    with_strata = [b for b in complete if b.has_strata()]
    if with_strata:
        newest = with_strata[-1]
        exports = lake.exports_dir()
        names = [*strata_files(newest.exports), *(n for n in (VARS_FILE, BUILD_FILE) if (newest.exports / n).exists())]
        published = set(strata_files(exports))
        whole = published == set(strata_files(newest.exports)) and all(
            _same_file(newest.exports / n, exports / n) or _same_content(newest.exports / n, exports / n)
            for n in names)
        if not whole:
            _publish_strata(newest)
            for name in (VARS_FILE, BUILD_FILE):
                if (newest.exports / name).exists():
                    _replace_with_link(newest.exports / name, exports / name)
            lake._fsync_dir(exports)
            done.append(f"strata of build {newest.build_id}")
    return done


def _same_content(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_size == b.stat().st_size and _sha256(a) == _sha256(b)
    except OSError:
        return False


def prune(keep: int | None = None) -> list[Path]:
    """Delete all but the newest ``keep`` snapshots. What is published stays: the database and the
    segments are hard links of their own (``<exports>/segments/<id>/``), not the snapshot's names."""
    keep = keep_count() if keep is None else keep
    removed = []
    for old in snapshots()[:-keep]:
        shutil.rmtree(old.folder, ignore_errors=True)
        removed.append(old.folder)
    return removed


# ------------------------------------------------------------------------------------------ readers


def published_build() -> dict | None:
    """The record of the build whose strata are published (``curation_build.json``), or None."""
    return _read_json(lake.exports_dir() / BUILD_FILE)


def check_published_exports(sha256_of: Callable[[Path], str] | None = None) -> dict:
    """The published strata and vars as one build's, or a UserError saying why they are not: every
    segment the build recorded, with its sha256, and no other segment in the strata folders.
    ``sha256_of`` (default: read and hash the file) lets a caller that remembers the hashes of files
    it saw before, unchanged since, skip re-reading them (`reasonlite export` does)."""
    sha256_of = sha256_of or _sha256
    exports = lake.exports_dir()
    record = published_build()
    if record is None:
        raise UserError(f"{exports / BUILD_FILE}: missing; the strata were not published by a complete "
                        "`reasonlite curate` (run it)")
    recorded = record.get("strata") or {}
    for name, expected in recorded.items():
        path = exports / name
        if not path.exists() or sha256_of(path) != expected.get("sha256"):
            raise UserError(f"{path}: not the file build {record.get('build_id')} published; a publish was "
                            "interrupted or the file was changed: run `reasonlite curate`")
    for name in STRATA_DIRS:
        for path in stratum_segments(exports / name):
            if f"{name}/{path.name}" not in recorded:
                raise UserError(f"{path}: a segment build {record.get('build_id')} did not publish; a publish "
                                "was interrupted or the folder was changed: run `reasonlite curate`")
    return record
