"""The one atomic writer: files and folders replaced whole through a staging path, never left half written."""

import pytest

from prunelens.core.jsonl import replace_atomically, write_atomic


def test_a_file_is_replaced_whole_and_no_staging_file_stays(tmp_path):
    path = tmp_path / "sub" / "out.json"
    write_atomic(path, "first")
    write_atomic(path, "ünïcode")
    assert path.read_bytes() == "ünïcode".encode() and [p.name for p in path.parent.iterdir()] == ["out.json"]


def test_a_failing_write_keeps_the_old_file_and_removes_its_staging(tmp_path):
    path = tmp_path / "out.txt"
    write_atomic(path, b"old")

    def half_then_fail(staging):
        staging.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_atomically(path, half_then_fail)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def folder_with(name):
    def write(staging):
        staging.mkdir()
        (staging / name).write_text(name)

    return write


def test_a_folder_replaces_a_folder_unless_the_existing_one_is_kept(tmp_path):
    target = tmp_path / "model"
    replace_atomically(target, folder_with("a"))
    replace_atomically(target, folder_with("b"))
    assert [p.name for p in target.iterdir()] == ["b"]  # the old folder's files are gone
    replace_atomically(target, folder_with("c"), keep_existing=True)  # another process finished first
    assert [p.name for p in target.iterdir()] == ["b"] and [p.name for p in tmp_path.iterdir()] == ["model"]
    replace_atomically(tmp_path / "fresh", folder_with("d"), keep_existing=True)
    assert [p.name for p in (tmp_path / "fresh").iterdir()] == ["d"]


def test_a_file_never_replaces_a_folder(tmp_path):
    (tmp_path / "out.md").mkdir()
    (tmp_path / "out.md" / "notes").write_text("mine")
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path / "out.md", "report")
    assert (tmp_path / "out.md" / "notes").read_text() == "mine" and len(list(tmp_path.iterdir())) == 1
