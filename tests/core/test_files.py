"""core.files.atomic_write: whole files or none, no temporary left behind."""

import os

import pytest

from graphnet.core.files import atomic_write


def test_atomic_write_replaces_only_with_a_complete_file(tmp_path):
    path = tmp_path / "out.bin"
    atomic_write(path, lambda f: f.write(b"first"))
    assert path.read_bytes() == b"first"

    def fails(f):
        f.write(b"half")
        raise RuntimeError("disk gone")
    with pytest.raises(RuntimeError, match="disk gone"):
        atomic_write(path, fails)
    assert path.read_bytes() == b"first"  # the old file stays whole
    assert os.listdir(tmp_path) == ["out.bin"]  # and the failed write left nothing


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_atomic_write_mode(tmp_path):
    atomic_write(tmp_path / "a", lambda f: f.write(b"x"))
    atomic_write(tmp_path / "b", lambda f: f.write(b"x"), mode=0o644)
    assert os.stat(tmp_path / "a").st_mode & 0o777 == 0o600  # mkstemp's: owner only
    assert os.stat(tmp_path / "b").st_mode & 0o777 == 0o644
