"""Safe zip extraction for uploaded series.

``zipfile.extractall`` strips ``..`` and absolute paths silently and trusts the declared sizes;
an upload needs more: every entry is checked *before* anything is written (names, links, count,
declared sizes and compression ratio), and the bytes actually written are counted again, since
the sizes in a zip's directory are whatever its author wrote there.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from workbench.errors import InputError
from workbench.io.limits import DEFAULT_LIMITS, Limits, check_file_size

_CHUNK = 1 << 20
_JUNK_FOLDERS = {"__MACOSX"}  # macOS resource forks, not images


def _is_junk(parts: tuple[str, ...]) -> bool:
    """macOS resource forks and hidden files (``.DS_Store``, ``._x``) are skipped."""
    return any(p in _JUNK_FOLDERS or p.startswith(".") for p in parts)


def _safe_parts(info: zipfile.ZipInfo, source: str) -> tuple[str, ...]:
    """The entry's path components; InputError for absolute names, drives and ``..``."""
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":") or ".." in path.parts:
        raise InputError(
            f"{source}: the zip holds an entry that points outside the archive ({name!r}); "
            "zip the files again with relative names."
        )
    return tuple(p for p in path.parts if p not in ("", "."))


def _is_link(info: zipfile.ZipInfo) -> bool:
    """Unix symlinks are stored as entries whose external mode says S_IFLNK."""
    return stat.S_ISLNK(info.external_attr >> 16)


def _entries(
    zf: zipfile.ZipFile, source: str, limits: Limits
) -> list[tuple[zipfile.ZipInfo, Path]]:
    """Check every entry and return (entry, relative path) for the files to extract."""
    entries: list[tuple[zipfile.ZipInfo, Path]] = []
    seen: set[str] = set()
    total = 0
    for info in zf.infolist():
        parts = _safe_parts(info, source)
        if _is_link(info):
            raise InputError(
                f"{source}: the zip holds a symbolic link ({info.filename!r}); "
                "zip the files themselves, not links."
            )
        if info.is_dir() or not parts or _is_junk(parts):
            continue
        if info.flag_bits & 0x1:
            raise InputError(f"{source}: the zip is password-protected; upload an unencrypted zip.")
        key = "/".join(parts).lower()
        if key in seen:
            raise InputError(f"{source}: the zip holds {info.filename!r} twice; zip it again.")
        seen.add(key)
        if len(seen) > limits.max_files:
            raise InputError(
                f"{source}: the zip holds more than {limits.max_files:,} files; "
                "upload fewer files at a time."
            )
        if info.file_size > limits.max_file_bytes:
            raise InputError(
                f"{source}: {info.filename!r} unpacks to {info.file_size:,} bytes, above the "
                f"{limits.max_file_bytes:,} byte limit per file."
            )
        if info.file_size > max(
            limits.ratio_floor_bytes, limits.max_compression_ratio * max(info.compress_size, 1)
        ):
            raise InputError(
                f"{source}: {info.filename!r} is compressed more than "
                f"{limits.max_compression_ratio:g} to 1, as zip bombs are; it was not extracted."
            )
        total += info.file_size
        if total > limits.max_total_uncompressed_bytes:
            raise InputError(
                f"{source}: the zip unpacks to more than {limits.max_total_uncompressed_bytes:,} "
                "bytes; upload fewer or smaller files."
            )
        entries.append((info, Path(*parts)))
    return entries


def _copy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> int:
    """Write one entry, never more than ``budget`` bytes; return the bytes written."""
    written = 0
    with zf.open(info) as src, open(target, "xb") as dst:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            if written > budget:
                raise InputError(
                    f"{info.filename!r} unpacks to more bytes than the zip declares; "
                    "the archive is not safe to extract."
                )
            dst.write(chunk)
    return written


def _make_parents(target: Path, made: list[Path]) -> None:
    """``mkdir -p`` that records the folders it creates, so a refusal can remove them."""
    missing = [p for p in reversed(target.parents) if not p.exists()]
    for folder in missing:
        folder.mkdir()
        made.append(folder)


# What zipfile raises on a damaged archive: bad headers, bad CRC, truncated or corrupt deflate
# data, unsupported compression methods, seeks past either end.
_DAMAGED = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    ValueError,
    OSError,
    struct.error,
)


def extract_zip(
    path: str | os.PathLike, dest: Path, *, limits: Limits = DEFAULT_LIMITS
) -> list[Path]:
    """Extract the regular files of a zip into ``dest`` and return their paths, sorted.

    Refuses (InputError, nothing left behind) names with ``..`` or absolute paths, symbolic
    links, encrypted entries, more than ``max_files`` files, and sizes or compression ratios
    beyond ``limits``. Skips folders, ``__MACOSX`` and hidden files.
    """
    path, dest = Path(path), Path(dest)
    source = path.name
    check_file_size(path, limits)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    files: list[Path] = []
    folders: list[Path] = []
    try:
        with zipfile.ZipFile(path) as zf:
            remaining = limits.max_total_uncompressed_bytes
            for info, rel in _entries(zf, source, limits):
                target = (root / rel).resolve()
                if not target.is_relative_to(root):  # e.g. through a link already in dest
                    raise InputError(f"{info.filename!r} would land outside the folder.")
                if target.exists():
                    raise InputError(f"{info.filename!r} already exists in the destination.")
                _make_parents(target, folders)
                files.append(target)
                remaining -= _copy(zf, info, target, min(info.file_size, remaining))
    except InputError as exc:
        _remove(files, folders)
        message = str(exc)
        raise InputError(
            message if message.startswith(source) else f"{source}: {message}"
        ) from None
    except _DAMAGED:
        _remove(files, folders)
        raise InputError(
            f"{source}: the zip cannot be extracted: it is damaged or truncated, or uses an "
            "unsupported compression method; zip the files again."
        ) from None
    return sorted(files)


def _remove(files: list[Path], folders: list[Path]) -> None:
    """Undo a partial extraction so that a refused archive leaves nothing behind."""
    for file in files:
        file.unlink(missing_ok=True)
    for folder in reversed(folders):
        folder.rmdir()
