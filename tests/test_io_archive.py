"""Safe zip extraction: hostile archives are refused whole, a normal one extracts."""

import stat
import zipfile
from pathlib import Path

import pytest

from workbench.errors import InputError
from workbench.io.archive import extract_zip
from workbench.io.limits import Limits


def make_zip(path: Path, entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_normal_zip_extracts_and_skips_junk(tmp_path):
    archive = make_zip(
        tmp_path / "series.zip",
        {
            "series/a.dcm": b"A" * 100,
            "series/sub/b.dcm": b"B" * 50,
            "__MACOSX/series/._a.dcm": b"junk",
            "series/.DS_Store": b"junk",
            "series/empty_dir/": b"",
        },
    )
    out = tmp_path / "out"
    files = extract_zip(archive, out)
    root = out.resolve()
    assert files == [root / "series/a.dcm", root / "series/sub/b.dcm"]
    assert (out / "series/a.dcm").read_bytes() == b"A" * 100
    assert (out / "series/sub/b.dcm").read_bytes() == b"B" * 50
    assert not (out / "__MACOSX").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "..\\evil.txt"])
def test_path_traversal_is_refused(tmp_path, name):
    archive = make_zip(tmp_path / "t.zip", {"ok.txt": b"fine", name: b"evil"})
    with pytest.raises(InputError, match="outside the archive"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []  # refused whole: nothing extracted


@pytest.mark.parametrize("name", ["/etc/evil", "C:/evil.txt", "C:\\evil.txt"])
def test_absolute_names_are_refused(tmp_path, name):
    archive = make_zip(tmp_path / "a.zip", {name: b"evil"})
    with pytest.raises(InputError, match="outside the archive"):
        extract_zip(archive, tmp_path / "out")


def test_symlink_entries_are_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("passwd")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(InputError, match="symbolic link"):
        extract_zip(archive, tmp_path / "out")


def test_too_many_files(tmp_path):
    archive = make_zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" for i in range(6)})
    with pytest.raises(InputError, match="more than 5 files"):
        extract_zip(archive, tmp_path / "out", limits=Limits(max_files=5))
    assert len(extract_zip(archive, tmp_path / "out2", limits=Limits(max_files=6))) == 6


def test_zip_bomb_ratio_is_refused(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(10 << 20)})  # ~1000:1
    with pytest.raises(InputError, match="compressed more than 200 to 1"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "zeros.bin").exists()


def test_small_entries_may_compress_beyond_the_ratio(tmp_path):
    """A kaggle_3m patient's blank masks (192 kB of zeros each, ~500:1) are no bomb: entries up
    to ``ratio_floor_bytes`` skip the ratio check, and the total size still bounds the zip."""
    masks = {f"p/p_{i}_mask.tif": bytes(192 * 1024) for i in range(3)}
    archive = make_zip(tmp_path / "patient.zip", masks)
    assert len(extract_zip(archive, tmp_path / "out")) == 3
    with pytest.raises(InputError, match="compressed more than 200 to 1"):
        extract_zip(archive, tmp_path / "out2", limits=Limits(ratio_floor_bytes=0))


def test_total_uncompressed_size_is_limited(tmp_path):
    entries = {f"f{i}.bin": bytes(range(256)) * 40 for i in range(3)}  # 10 kB each
    archive = make_zip(tmp_path / "big.zip", entries, method=zipfile.ZIP_STORED)
    with pytest.raises(InputError, match="unpacks to more than 25,000 bytes"):
        extract_zip(archive, tmp_path / "out", limits=Limits(max_total_uncompressed_bytes=25_000))


def test_declared_size_lie_is_caught(tmp_path):
    archive = make_zip(tmp_path / "lie.zip", {"a.bin": b"x" * 1000}, method=zipfile.ZIP_STORED)
    raw = bytearray(archive.read_bytes())
    # Shrink the declared uncompressed size in the central directory to 10 bytes.
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    with pytest.raises(InputError):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "a.bin").exists()


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04" + b"\x00" * 30])
def test_damaged_zip_gets_one_line_error(tmp_path, content):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(content)
    with pytest.raises(InputError, match=r"bad\.zip: the zip cannot be extracted"):
        extract_zip(archive, tmp_path / "out")


def test_duplicate_names_are_refused(tmp_path):
    archive = tmp_path / "dup.zip"
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("a.txt", b"1")
        zf.writestr("a.txt", b"2")
    with pytest.raises(InputError, match="twice"):
        extract_zip(archive, tmp_path / "out")


def test_total_size_is_bounded_below_the_bomb_ratio(tmp_path):
    """Issue 18 fault 7: a zip compressed ~70:1 (below the 200:1 ratio) that unpacks to
    300 MB, above the 256 MB total limit, is refused before anything is written."""
    import os

    archive = tmp_path / "series.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for i in range(300):  # like a DICOM series: 300 files of 1 MB
            zf.writestr(f"IM{i:04d}", os.urandom(10_000) + bytes((1 << 20) - 10_000))
    with zipfile.ZipFile(archive) as zf:
        assert all(i.file_size < 200 * i.compress_size for i in zf.infolist())
    with pytest.raises(InputError, match="unpacks to more than"):
        extract_zip(archive, tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())
