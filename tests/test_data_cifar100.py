"""CIFAR-100 fetch on a tiny archive in the real format: verify, extract safely, convert, and
survive offline use, bad checksums, partial downloads and interruptions."""

from __future__ import annotations

import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fakedata import FakeCifar, write_cifar100_archive

from sakd.data import (
    ChecksumError,
    DatasetNotFetchedError,
    DownloadError,
    InvalidDatasetError,
    UnsafeArchiveError,
    fetch_dataset,
    load_dataset,
)
from sakd.data import cifar100 as cifar_module
from sakd.data import download as download_module
from sakd.data.cifar100 import ARCHIVE, Cifar100Source, read_pickle

URL = ARCHIVE.url


@pytest.fixture
def fake(tmp_path, monkeypatch) -> FakeCifar:
    """A small real-format archive (outside the data root); the official md5 patched to its own."""
    fake = write_cifar100_archive(tmp_path / "cifar-100-python.tar.gz")
    monkeypatch.setattr(Cifar100Source, "remote", replace(ARCHIVE, md5=fake.md5))
    return fake


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "data"


def place(fake: FakeCifar, root: Path) -> Path:
    target = root / "downloads" / "cifar-100-python.tar.gz"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(fake.path, target)
    return target


def serve(monkeypatch, payload: bytes, fail_after: int | None = None) -> list[str]:
    """Replace the network: write payload (or its first fail_after bytes, then drop the line)."""
    calls: list[str] = []

    def fake_download(url: str, dest: Path, timeout_s: float = 60.0) -> None:
        calls.append(url)
        dest.write_bytes(payload[:fail_after] if fail_after is not None else payload)
        if fail_after is not None:
            raise ConnectionResetError("connection reset by peer")

    monkeypatch.setattr(download_module, "download_url", fake_download)
    return calls


def no_network(monkeypatch) -> None:
    def offline(url: str, dest: Path, timeout_s: float = 60.0) -> None:
        raise OSError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download_module, "download_url", offline)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def assert_matches(fake: FakeCifar, root: Path) -> None:
    for split, (images, labels) in fake.splits.items():
        data = load_dataset("cifar100", root, split)
        assert np.array_equal(data.images.numpy(), images)  # R,G,B planes -> [N,3,32,32]
        assert np.array_equal(data.labels.numpy(), labels)
        assert data.classes == fake.classes


def test_download_verify_extract_convert(fake, root, monkeypatch):
    calls = serve(monkeypatch, fake.path.read_bytes())
    folder = fetch_dataset("cifar100", root)
    assert calls == [URL] and folder == root / "cifar100"
    assert (folder / "manifest.json").is_file() and not leftovers(folder)
    assert_matches(fake, root)
    fetch_dataset("cifar100", root)  # complete: no second download
    assert calls == [URL]


def test_offline_error_names_url_file_and_place_then_placed_file_works(fake, root, monkeypatch):
    no_network(monkeypatch)
    with pytest.raises(DownloadError) as err:
        fetch_dataset("cifar100", root)
    target = root / "downloads" / "cifar-100-python.tar.gz"
    message = str(err.value)
    assert URL in message and "cifar-100-python.tar.gz" in message and str(target) in message
    assert not target.exists() and not (root / "cifar100" / "manifest.json").exists()
    place(fake, root)
    fetch_dataset("cifar100", root)  # network still down: the placed file is used
    assert_matches(fake, root)


def test_download_disabled_without_a_placed_file(fake, root):
    with pytest.raises(DatasetNotFetchedError, match=r"put the file cifar-100-python\.tar\.gz"):
        fetch_dataset("cifar100", root, download=False)


def test_placed_file_with_wrong_checksum_names_file_and_digests(fake, root, monkeypatch):
    target = place(fake, root)
    monkeypatch.setattr(Cifar100Source, "remote", replace(ARCHIVE, md5="0" * 32))
    with pytest.raises(ChecksumError) as err:
        fetch_dataset("cifar100", root)
    message = str(err.value)
    assert str(target) in message and "0" * 32 in message and fake.md5 in message


def test_partial_download_is_never_kept(fake, root, monkeypatch):
    payload = fake.path.read_bytes()
    serve(monkeypatch, payload, fail_after=len(payload) // 2)
    with pytest.raises(DownloadError, match="connection reset"):
        fetch_dataset("cifar100", root)
    folder = root / "downloads"
    assert not (folder / "cifar-100-python.tar.gz").exists() and not leftovers(folder)
    serve(monkeypatch, payload[: len(payload) // 2])  # truncated but "successful" transfer
    with pytest.raises(ChecksumError, match=f"expected {fake.md5}"):
        fetch_dataset("cifar100", root)
    assert not (folder / "cifar-100-python.tar.gz").exists() and not leftovers(folder)
    serve(monkeypatch, payload)
    fetch_dataset("cifar100", root)
    assert_matches(fake, root)


def test_path_traversal_member_is_rejected(tmp_path, root, monkeypatch):
    evil = write_cifar100_archive(
        tmp_path / "cifar-100-python.tar.gz", extra_members=(("../../escaped.txt", b"x"),)
    )
    monkeypatch.setattr(Cifar100Source, "remote", replace(ARCHIVE, md5=evil.md5))
    place(evil, root)
    with pytest.raises(UnsafeArchiveError, match=r"escaped\.txt"):
        fetch_dataset("cifar100", root)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (root / "cifar100" / "manifest.json").exists()


@pytest.mark.parametrize("interruption", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_interrupted_conversion_leaves_no_marker_and_is_redone(
    fake, root, monkeypatch, interruption
):
    place(fake, root)
    real_read_batch = cifar_module.read_batch
    seen: list[str] = []

    def read_then_die(path: Path):
        seen.append(path.name)
        if path.name == "test":  # train.pt is already written when this strikes
            raise interruption
        return real_read_batch(path)

    monkeypatch.setattr(cifar_module, "read_batch", read_then_die)
    with pytest.raises(type(interruption)):
        fetch_dataset("cifar100", root)
    folder = root / "cifar100"
    assert (folder / "train.pt").exists() and not (folder / "manifest.json").exists()
    assert not leftovers(folder)  # the extraction scratch folder is gone
    with pytest.raises(DatasetNotFetchedError, match="interrupted"):
        load_dataset("cifar100", root, "train")  # the half-done folder is not trusted
    monkeypatch.setattr(cifar_module, "read_batch", real_read_batch)
    fetch_dataset("cifar100", root)
    assert_matches(fake, root)


def test_stale_temporaries_of_a_killed_run_are_swept(fake, root):
    downloads = place(fake, root).parent
    folder = root / "cifar100"
    folder.mkdir()
    (folder / ".tmp-train.pt-abc123").write_bytes(b"half a file")
    (folder / ".tmp-scratch").mkdir()
    (downloads / ".tmp-cifar-100-python.tar.gz-x1.tmp").write_bytes(b"half a download")
    fetch_dataset("cifar100", root)
    assert not leftovers(folder) and not leftovers(downloads)


def test_changed_data_file_invalidates_the_fetch(fake, root):
    place(fake, root)
    fetch_dataset("cifar100", root)
    with (root / "cifar100" / "test.pt").open("ab") as f:
        f.write(b"junk")
    with pytest.raises(DatasetNotFetchedError, match="changed"):
        load_dataset("cifar100", root, "test")
    fetch_dataset("cifar100", root)  # redone, not skipped
    assert_matches(fake, root)


class _RunsCode:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickles_that_would_run_code_are_refused(tmp_path):
    path = tmp_path / "train"
    path.write_bytes(pickle.dumps({"data": _RunsCode()}, protocol=2))
    with pytest.raises(InvalidDatasetError, match=r"refusing to load global .*print"):
        read_pickle(path)


def test_python2_pickles_as_in_the_official_archive_are_read(tmp_path):
    """The official batches were written by Python 2: `numpy.core` globals, array bytes as str."""
    raw = bytes([0, 7, 200, 255, 1, 128])
    py2 = (
        b"\x80\x02}(U\x04data"
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        b"(K\x01K\x02K\x03\x86cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R"
        b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x06" + raw + b"tb"
        b"U\x0bfine_labels](K\x01K\x02eu."
    )
    path = tmp_path / "train"
    path.write_bytes(py2)
    batch = read_pickle(path)
    assert batch["data"].dtype == np.uint8 and batch["data"].tobytes() == raw
    assert batch["fine_labels"] == [1, 2]
