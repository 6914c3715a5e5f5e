import os
import stat

import pytest

from cnnlib.files import atomic_open


def test_writes_the_whole_file_readable_by_all(tmp_path):
    path = tmp_path / "sub" / "out.json"
    with atomic_open(path) as f:
        f.write("new")
    assert path.read_text() == "new" and list(path.parent.iterdir()) == [path]
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_an_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_open(path, "wb") as f:
            f.write(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old" and list(tmp_path.iterdir()) == [path]


def test_only_whole_file_modes(tmp_path):
    with pytest.raises(ValueError, match="mode must start with 'w'"):
        with atomic_open(tmp_path / "x", "a"):
            pass
