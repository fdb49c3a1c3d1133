"""Unpacking archives that try to write outside their folder, or hold what a model never does."""

from __future__ import annotations

import gzip
import os

import pytest

from segnet_ros.core.errors import ModelError
from segnet_ros.zoo.archive import Limits, extract

from zoo_helpers import hostile_archive, make_archive, oracle_model

TOP = "FCN-ResNet18-Pascal-VOC-320x320"


@pytest.fixture
def box(tmp_path):
    """(an empty folder to unpack into, a folder beside it that nothing may touch)."""
    (tmp_path / "into").mkdir()
    (tmp_path / "outside").mkdir()
    return tmp_path / "into", tmp_path / "outside"


def test_good_archive_unpacks_byte_for_byte(tmp_path, box):
    into, _ = box
    folder = oracle_model(tmp_path / TOP, 320, 320, 21)
    extract(make_archive(tmp_path / "m.tar.gz", folder), into)
    for name in ("fcn_resnet18.onnx", "classes.txt", "colors.txt"):
        assert (into / TOP / name).read_bytes() == (folder / name).read_bytes()
        assert (into / TOP / name).stat().st_mode & 0o777 == 0o644


def test_links_that_stay_inside_are_kept(tmp_path, box):
    into, _ = box
    archive = hostile_archive(
        tmp_path / "a.tar.gz", (f"{TOP}/classes.txt", "file", b"a\nb\n"),
        (f"{TOP}/sub/labels", "symlink", "../classes.txt"), (f"{TOP}/copy.txt", "hardlink", f"{TOP}/classes.txt"))
    extract(archive, into)
    assert os.readlink(into / TOP / "sub" / "labels") == "../classes.txt"
    assert (into / TOP / "sub" / "labels").read_text() == "a\nb\n"
    assert (into / TOP / "copy.txt").read_text() == "a\nb\n" and not (into / TOP / "copy.txt").is_symlink()


def _outside(box) -> str:
    return str(box[1] / "evil")


HOSTILE = {
    "dotdot": ([(f"{TOP}/../../outside/evil", "file", b"x")], "climbs out of the folder with '..'"),
    "absolute": ([("OUTSIDE", "file", b"x")], "has an absolute path"),
    "symlink-up": ([(f"{TOP}/link", "symlink", "../../outside")], "leads out of the folder"),
    "symlink-absolute": ([(f"{TOP}/link", "symlink", "/etc/passwd")], "leads out of the folder"),
    "symlink-chain": ([(f"{TOP}/b", "symlink", "."), (f"{TOP}/a", "symlink", "b/../../outside")],
                      "link '" + TOP + "/a' -> 'b/../../outside' leads out"),
    "write-through-link": ([(f"{TOP}/d", "dir", b""), (f"{TOP}/up", "symlink", "d"), (f"{TOP}/up/evil", "file", b"x")],
                           "lies behind the link"),
    # a hard link is named by its own name, not by its target as if that were the member
    "hardlink-up": ([(f"{TOP}/h", "hardlink", "../outside/evil")],
                    f"hard link '{TOP}/h' -> '../outside/evil' leads out of the folder"),
    "hardlink-absolute": ([(f"{TOP}/h", "hardlink", "/etc/passwd")],
                          f"hard link '{TOP}/h' -> '/etc/passwd' leads out of the folder"),
    "hardlink-dangling": ([(f"{TOP}/h", "hardlink", f"{TOP}/nothing")],
                          f"hard link '{TOP}/h' -> '{TOP}/nothing' names no file before it"),
    "hardlink-through-link": ([(f"{TOP}/d/f", "file", b"x"), (f"{TOP}/up", "symlink", "d"),
                               (f"{TOP}/h", "hardlink", f"{TOP}/up/f")],
                              f"hard link '{TOP}/h' -> '{TOP}/up/f' lies behind the link '{TOP}/up'"),
    "char-device": ([(f"{TOP}/null", "chr", b"")], "is a device file"),
    "block-device": ([(f"{TOP}/sda", "blk", b"")], "is a device file"),
    "fifo": ([(f"{TOP}/pipe", "fifo", b"")], "is a fifo"),
    "duplicate": ([(f"{TOP}/l", "symlink", "x"), (f"{TOP}/l", "file", b"x")], "appears twice"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_members_are_refused(tmp_path, box, case):
    members, message = HOSTILE[case]
    members = [(name.replace("OUTSIDE", _outside(box)), kind, data) for name, kind, data in members]
    archive = hostile_archive(tmp_path / f"{case}.tar.gz", *members)
    with pytest.raises(ModelError) as caught:
        extract(archive, box[0])
    assert message in str(caught.value) and str(archive) in str(caught.value)
    assert list(box[1].iterdir()) == []  # nothing landed outside
    assert not (tmp_path / "evil").exists()


def test_oversize_member_total_and_count_are_capped(tmp_path, box):
    archive = hostile_archive(tmp_path / "big.tar.gz", *[(f"{TOP}/f{i}", "file", b"x" * 600) for i in range(4)])
    with pytest.raises(ModelError, match="member 'FCN-ResNet18-Pascal-VOC-320x320/f0' is 600 bytes, over the 500"):
        extract(archive, box[0], Limits(max_member=500))
    with pytest.raises(ModelError, match="unpacks to more than 1500 bytes"):
        extract(archive, tmp_path / "into2", Limits(max_total=1500))
    assert not (tmp_path / "into2" / TOP / "f2").exists()  # stopped before writing past the cap
    with pytest.raises(ModelError, match="more than 3 members"):
        extract(archive, box[0] / "x", Limits(max_members=3))
    extract(archive, tmp_path / "into3", Limits(max_member=600, max_total=2400, max_members=4))


def test_truncated_or_garbage_archives(tmp_path, box):
    folder = oracle_model(tmp_path / TOP, 320, 320, 21)
    good = make_archive(tmp_path / "m.tar.gz", folder).read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError, match="damaged or truncated archive"):
        extract(truncated, box[0])
    with pytest.raises(ModelError, match="archive not found"):
        extract(tmp_path / "missing.tar.gz", box[0])


def _refusal(archive, into) -> str:
    with pytest.raises(ModelError) as caught:
        extract(archive, into)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{archive}: ")
    return message


def test_what_never_was_an_archive_is_called_so_in_one_line(tmp_path):
    """tarfile explains in five lines; the hint to download again is wrong for a file that never was an archive."""
    page = tmp_path / "page.tar.gz"
    page.write_bytes(b"<html>not found</html>")
    message = _refusal(page, tmp_path / "a")
    assert "not a tar or tar.gz archive (it starts with b'<html>not found<')" in message
    assert "give the model's .tar.gz" in message and "again" not in message and "truncated" not in message
    empty = tmp_path / "empty.tar.gz"
    empty.write_bytes(b"")
    assert "the file is empty, not a model archive" in _refusal(empty, tmp_path / "b")
    zipped_page = tmp_path / "zipped.tar.gz"
    zipped_page.write_bytes(gzip.compress(b"<html>not found</html>" * 40))
    assert "not a tar archive inside its compression" in _refusal(zipped_page, tmp_path / "c")


def test_an_archive_over_the_size_limit_is_refused_unread(tmp_path, box):
    folder = oracle_model(tmp_path / TOP, 320, 320, 21)
    archive = make_archive(tmp_path / "m.tar.gz", folder)
    size = archive.stat().st_size
    with pytest.raises(ModelError, match=f"{size} bytes, over the {size - 1}-byte limit for a model archive"):
        extract(archive, box[0], Limits(max_archive=size - 1))
    assert list(box[0].iterdir()) == []
    extract(archive, box[0], Limits(max_archive=size))
