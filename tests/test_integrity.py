"""Store integrity end to end: every file a store serves has a crc32c recorded when written and
checked when read; ``verify`` checks every file; re-running ``convert`` / ``pair`` repairs exactly
what is damaged. One test per failure of issue 12 (a flipped byte in a frames shard, a deleted
shard, labels rewritten with zarr, a flipped byte in rgb/, pairs/ and the per-sample arrays,
convert re-run on a damaged store), a store written before checksums, a damaged root ``zarr.json``
(the store's attributes) and ``frames/zarr.json``, and a seeded fuzz test."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import zarr
from conftest import write_digit_tree
from typer.testing import CliRunner

from tmkt_data import FrameDataset
from tmkt_data.cli import app as data_app
from tmkt_data.convert import ConvertError, ConvertOptions, convert
from tmkt_data.pairing import pair_store, read_pairs
from tmkt_data.store import StoreError, open_store, read_record, shard_file, unchecked_parts, verify_store
from tmkt_data.store.records import encode_record, record_path
from tmkt_train.cli import app as train_app
from tmkt_train.config import make_config
from tmkt_train.trainer import fit

runner = CliRunner()
OPTS = ConvertOptions(frames=3, size=(16, 16), shard_samples=16)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(raw tree, converted and paired store): 80 N-MNIST-like recordings, 5 shards of 16."""
    root = tmp_path_factory.mktemp("integrity")
    tree = write_digit_tree(root / "raw")
    store = root / "s.zarr"
    convert("nmnist", tree, store, OPTS)
    pair_store(store, "digits", None, val_fraction=0.2, seed=0)
    assert verify_store(store) == []
    return tree, store


@pytest.fixture
def store(pristine: tuple[Path, Path], tmp_path: Path) -> Path:
    """A fresh copy of the pristine store, to damage."""
    return Path(shutil.copytree(pristine[1], tmp_path / "s.zarr"))


def flip(path: Path, at: float | int, mask: int = 0x10) -> None:
    """XOR one byte of ``path`` (``at``: a fraction of the size, or a byte offset) with ``mask``."""
    data = bytearray(path.read_bytes())
    i = int(len(data) * at) if isinstance(at, float) else at
    data[i] ^= mask
    path.write_bytes(bytes(data))


def silent_flip(store: Path, k: int) -> int:
    """Flip the first byte from 30 % into shard ``k``'s file whose flip still decodes, to other
    values: what plain zarr (no checksums) reads without a word. Returns the values changed."""
    sfile = shard_file(store, k)
    data = sfile.read_bytes()
    a, b = k * 16, (k + 1) * 16
    clean = np.asarray(zarr.open_group(str(store), mode="r")["frames"][a:b], dtype=np.float32)
    start = int(len(data) * 0.3)
    for i in range(start, start + 2000):
        for mask in (0x01, 0x10, 0x80):
            sfile.write_bytes(data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :])
            try:
                got = np.asarray(zarr.open_group(str(store), mode="r")["frames"][a:b], dtype=np.float32)
            except Exception:  # a flip blosc notices: try the next one
                continue
            changed = int(np.sum(~((got == clean) | (np.isnan(got) & np.isnan(clean)))))
            if changed:
                return changed
    raise AssertionError("no silently decoding flip found")


def one_epoch(store: Path, out: Path, **kw):
    base = dict(store=str(store), out=str(out), model="demo", method="sliding", epochs=1, batch_size=16,
                num_workers=0, lr=0.02, drop_last=False)  # fmt: skip
    base.update(kw)
    return make_config(**base)


def fit_refuses(store: Path, out: Path, named: Path, monkeypatch: pytest.MonkeyPatch, clean: Path) -> None:
    """A one-epoch fit stops with a StoreError naming ``named`` and ``tmkt-data verify``, and every
    batch the loader handed to a training or evaluation step equals ``clean``'s samples."""
    import tmkt_train.batches as batches

    want = np.asarray(open_store(clean)["frames"][:])
    labels = np.asarray(open_store(clean)["labels"][:])
    real = batches.StoreBatches.__iter__
    served = []

    def spying(self):
        for batch in real(self):
            idx = batch["index"].numpy()
            served.append(len(idx))
            np.testing.assert_array_equal(batch["frames"].numpy(), want[idx])
            np.testing.assert_array_equal(batch["labels"].numpy(), labels[idx])
            yield batch

    monkeypatch.setattr(batches.StoreBatches, "__iter__", spying)
    with pytest.raises(StoreError) as err:
        fit(one_epoch(store, out), progress=False)
    message = str(err.value)
    assert "\n" not in message and str(named) in message and "tmkt-data verify" in message
    monkeypatch.setattr(batches.StoreBatches, "__iter__", real)


# ------------------------------------------------------------ issue 12, "Today", one test each


def test_flipped_byte_in_a_frames_shard_stops_fit(
    store: Path, pristine: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: 489 values changed (some NaN) and fit trained on them, exit 0."""
    sfile = shard_file(store, 2)  # train samples
    assert silent_flip(store, 2) > 0  # plain zarr reads other values without an error
    a, b = FrameDataset(pristine[1], "split:train"), FrameDataset(store, "split:train")
    with pytest.raises(StoreError, match="checksum mismatch in the chunk of sample row"):
        [b[i] for i in range(len(b))]
    assert len(a) == len(b)
    fit_refuses(store, tmp_path / "run", sfile, monkeypatch, pristine[1])
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    problems = verify_store(store)
    assert len(problems) == 1 and "shard 2: file frames/c/2/0/0/0/0 crc32c mismatch" in problems[0]
    assert "re-run the same `tmkt-data convert` command" in problems[0]


def test_missing_shard_file_stops_fit_instead_of_reading_zeros(
    store: Path, pristine: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a missing shard read as fill values (zeros) and fit trained on them."""
    sfile = shard_file(store, 4)
    sfile.unlink()
    with pytest.raises(StoreError, match=r"missing \(frames shard 4\)"):
        FrameDataset(store, "split:train")[len(FrameDataset(store, "split:train")) - 1]
    with pytest.raises(StoreError, match="missing"):
        np.asarray(open_store(store)["frames"][64:80])  # reading through zarr: no zeros either
    fit_refuses(store, tmp_path / "run", sfile, monkeypatch, pristine[1])
    assert any("shard 4: file frames/c/4/0/0/0/0 missing" in p for p in verify_store(store))


def test_labels_rewritten_with_zarr_are_caught_by_verify_and_fit(
    store: Path, pristine: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: verify said ok and fit trained on the wrong labels."""
    g = zarr.open_group(str(store), mode="r+")
    g["labels"][:] = (np.asarray(g["labels"][:]) + 1) % 10
    problems = verify_store(store)
    assert any("labels/c/0 crc32c mismatch" in p for p in problems), problems
    res = runner.invoke(data_app, ["verify", str(store)])
    assert res.exit_code == 1 and "labels/c/0" in res.stderr
    fit_refuses(store, tmp_path / "run", store / "labels" / "c" / "0", monkeypatch, pristine[1])


@pytest.mark.parametrize(
    "member",
    ["rgb/images/c/0/0/0/0", "labels/c/0", "valid/c/0", "pairs/train/dvs/c/0", "pairs/pool_rgb/c/0",
     "rgb/labels/c/0", "sample_id/c/0"],
)  # fmt: skip
def test_verify_checks_every_chunk(store: Path, member: str) -> None:
    """Before: verify checked only frames and array shapes; these flips all said ok."""
    flip(store / member, 0.5)
    problems = verify_store(store)
    assert len(problems) == 1 and f"file {member} crc32c mismatch" in problems[0], problems
    fix = "tmkt-data pair" if member.startswith(("rgb/", "pairs/")) else "tmkt-data convert"
    assert fix in problems[0]
    res = runner.invoke(data_app, ["verify", str(store)])
    assert res.exit_code == 1 and member in res.stderr and fix in res.stderr


@pytest.mark.parametrize("overwrite", [False, True])
def test_convert_again_repairs_exactly_the_damaged_shards(
    store: Path, pristine: tuple[Path, Path], overwrite: bool
) -> None:
    """Before: convert said "5 already done", exit 0, and the store stayed damaged."""
    tree, clean = pristine
    flip(shard_file(store, 1), 0.3)
    shard_file(store, 3).unlink()
    zarr.open_group(str(store), mode="r+")["labels"][0] = 7
    before = {k: shard_file(store, k).stat().st_mtime_ns for k in (0, 2, 4)}
    res = convert("nmnist", tree, store, OPTS, overwrite=overwrite)
    assert res.shards_done_before == 3 and len(res.repaired) == 2
    assert "shard 1:" in res.repaired[0] and "shard 3:" in res.repaired[1]
    assert {k: shard_file(store, k).stat().st_mtime_ns for k in (0, 2, 4)} == before  # not redone
    assert verify_store(store) == []
    for name in ("labels", "valid", "sample_id"):
        np.testing.assert_array_equal(open_store(store)[name][:], open_store(clean)[name][:])
    for split in ("split:train", "split:test"):
        a, b = FrameDataset(clean, split), FrameDataset(store, split)
        for i in range(len(a)):
            np.testing.assert_array_equal(a[i][0], b[i][0])


def test_damaged_completion_record_is_refused_and_repaired(store: Path, pristine: tuple[Path, Path]) -> None:
    """A record that still parses but lost a byte of a sample's metadata is not trusted."""
    rec_file = record_path(store, 1)
    text = rec_file.read_bytes()
    at = text.index(b'"labels": ') + len(b'"labels": ')
    rec_file.write_bytes(text[:at] + bytes([text[at] ^ 0x01]) + text[at + 1 :])  # a digit: still JSON
    assert read_record(store, 1) is None
    ds = FrameDataset(store, "split:train")
    with pytest.raises(StoreError, match="completion record of frames shard 1 missing or damaged"):
        [ds[i] for i in range(len(ds))]
    assert any("shard 1: completion record" in p for p in verify_store(store))
    res = convert("nmnist", pristine[0], store, OPTS)
    assert len(res.repaired) == 1 and "shard 1: completion record" in res.repaired[0]
    assert verify_store(store) == []


def test_convert_cli_says_how_many_shards_it_repaired(store: Path, pristine: tuple[Path, Path]) -> None:
    flip(shard_file(store, 0), 0.5)
    args = ["convert", "nmnist", str(pristine[0]), str(store), "--frames", "3", "--size", "16",
            "--shard-samples", "16"]  # fmt: skip
    res = runner.invoke(data_app, args)
    assert res.exit_code == 0, res.output
    assert "1 damaged and converted again" in res.stdout and "shard 0: file frames/c/0" in res.stderr
    assert runner.invoke(data_app, ["verify", str(store)]).exit_code == 0


def test_pair_again_rewrites_damaged_groups_and_the_pipeline_does_not_skip_them(store: Path) -> None:
    from tmkt_train.pipeline import pair_settings, pair_step

    settings = pair_settings(SimpleNamespace(pair={"rgb_kind": "digits", "val_fraction": 0.2}), None)
    said: list[str] = []
    first = pair_step(store, settings, said.append)
    assert pair_step(store, settings, said.append) == first and "up to date" in said[-1]
    flip(store / "rgb" / "images" / "c" / "0" / "0" / "0" / "0", 0.4)
    assert verify_store(store) != []
    with pytest.raises(StoreError, match="rgb/images/c/0/0/0/0: checksum mismatch"):
        np.asarray(read_pairs(store).rgb_images[:])
    assert pair_step(store, settings, said.append) == first and "up to date" not in said[-1]
    assert verify_store(store) == []
    flip(store / "pairs" / "val" / "dvs" / "c" / "0", 0.5)  # tmkt-data pair, same arguments
    with pytest.raises(StoreError, match="pairs/val/dvs/c/0: checksum mismatch"):
        read_pairs(store)
    pair_store(store, "digits", None, val_fraction=0.2, seed=0)
    assert verify_store(store) == [] and len(read_pairs(store).dvs["val"]) > 0


def test_worker_errors_arrive_as_one_line(store: Path, tmp_path: Path) -> None:
    """A damaged shard met in a DataLoader worker: one line, exit 2 (not torch's 18-line traceback)."""
    silent_flip(store, 2)
    args = ["fit", str(store), "--out", str(tmp_path / "r"), "--quiet", "--workers", "2", "--epochs", "1",
            "--method", "scratch", "--model", "demo", "--batch-size", "16"]  # fmt: skip
    res = runner.invoke(train_app, args)
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.stderr
    assert str(shard_file(store, 2)) in lines[0] and "tmkt-data verify" in lines[0]


def without_checksums(store: Path) -> None:
    """``store`` as tmkt wrote stores before checksums: no manifest, records without crc32c."""
    meta = json.loads((store / "_tmkt" / "zarr.json").read_text())
    del meta["attributes"]["checksums"]
    (store / "_tmkt" / "zarr.json").write_text(json.dumps(meta))
    for k in range(json.loads((store / "zarr.json").read_text())["attributes"]["n_shards"]):
        rec = read_record(store, k)
        for key in ("shard_crc32c", "chunk_crc32c", "record_crc32c"):
            del rec[key]
        record_path(store, k).write_bytes(encode_record(json.dumps(rec)))


def test_store_written_before_checksums_reads_once_warned_verifies_and_gains_them(
    store: Path, pristine: tuple[Path, Path]
) -> None:
    without_checksums(store)
    assert unchecked_parts(store) == ["the whole store"]
    with pytest.warns(UserWarning, match="written without checksums"):
        ds = FrameDataset(store, "train", rgb=True)
    ds[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per store and process
        FrameDataset(store, "test")
    assert verify_store(store) == []
    res = runner.invoke(data_app, ["verify", str(store)])
    assert res.exit_code == 0 and "without checksums" in res.stdout
    flip(shard_file(store, 1), 0.3)
    assert any("shard 1: file frames/c/1/0/0/0/0 sha256 mismatch" in p for p in verify_store(store))
    res = convert("nmnist", pristine[0], store, OPTS)  # repairs shard 1, adds the checksums
    assert len(res.repaired) == 1 and unchecked_parts(store) == ["rgb/ and pairs/"]
    pair_store(store, "digits", None, val_fraction=0.2, seed=0)
    assert unchecked_parts(store) == [] and verify_store(store) == []
    assert "chunk_crc32c" in read_record(store, 0)


# ------------------------------------------------------------ the root zarr.json (the store's attributes)


def flip_value(store: Path, name: str, mask: int = 0x01) -> None:
    """Flip one byte inside the value of root attribute ``name`` (for ``classes``: inside the class name
    ``"3"``), keeping ``zarr.json`` valid JSON: what plain zarr reads without a word."""
    root = store / "zarr.json"
    text = root.read_bytes()
    at = text.index(f'"{name}": '.encode()) + len(f'"{name}": ')
    at = text.index(b'"3"', at) + 1 if name == "classes" else at + (text[at : at + 1] == b'"')
    flipped = text[:at] + bytes([text[at] ^ mask]) + text[at + 1 :]
    assert json.loads(flipped) != json.loads(text)
    root.write_bytes(flipped)


def same_attrs(a: Path, b: Path) -> bool:
    """The two stores' root attributes are equal, but for when and how fast each was written."""
    drop = ("created", "conversion_seconds")
    x, y = (dict(zarr.open_group(str(p), mode="r").attrs) for p in (a, b))
    return {k: v for k, v in x.items() if k not in drop} == {k: v for k, v in y.items() if k not in drop}


@pytest.mark.parametrize(
    "name", ["classes", "params_hash", "format", "format_version", "n_samples", "status"]
)
def test_flipped_byte_in_the_store_attributes_is_caught_and_convert_rebuilds_them(
    store: Path, pristine: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Before: the root zarr.json had no checksum; a class name "3" read as "2" without a word (fit
    and evaluate then named the classes wrong), and convert again kept the damaged attributes."""
    tree, clean = pristine
    flip_value(store, name)
    assert not same_attrs(store, clean)  # plain zarr reads the damaged attributes silently
    problems = verify_store(store)
    assert len(problems) == 1 and "store attributes: file zarr.json crc32c mismatch" in problems[0], problems
    assert "re-run the same `tmkt-data convert` command" in problems[0]
    res = runner.invoke(data_app, ["verify", str(store)])
    assert res.exit_code == 1 and f"{store}: store attributes: file zarr.json crc32c mismatch" in res.stderr
    for read in (lambda: open_store(store), lambda: FrameDataset(store, "split:train")):
        with pytest.raises(StoreError) as err:
            read()
        message = str(err.value)
        assert "\n" not in message and message.startswith(f"{store / 'zarr.json'}: checksum mismatch"), (
            message
        )
        assert f"run `tmkt-data verify {store}`" in message
    fit_refuses(store, tmp_path / "run", store / "zarr.json", monkeypatch, clean)
    before = {k: shard_file(store, k).stat().st_mtime_ns for k in range(5)}
    args = ["convert", "nmnist", str(tree), str(store), "--frames", "3", "--size", "16",
            "--shard-samples", "16"]  # fmt: skip
    res = runner.invoke(data_app, args)  # the same command: rebuilds the attributes, keeps every shard
    assert res.exit_code == 0, res.output
    assert "5 already done)" in res.stdout and "zarr.json (the store's attributes)" in res.stderr, res.output
    assert {k: shard_file(store, k).stat().st_mtime_ns for k in range(5)} == before
    assert verify_store(store) == [] and same_attrs(store, clean)
    assert runner.invoke(data_app, ["verify", str(store)]).exit_code == 0
    assert len(read_pairs(store).dvs["val"]) > 0  # rgb/ and pairs/ kept, and they still match the store
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(open_store(store).attrs["classes"]) == [str(d) for d in range(10)]


def test_flipped_byte_in_the_frames_metadata_is_written_again_by_convert(
    store: Path, pristine: tuple[Path, Path]
) -> None:
    """Before: convert again recorded the crc32c of the damaged ``frames/zarr.json`` (verify then said
    ok) instead of writing it again."""
    meta = store / "frames" / "zarr.json"
    text = meta.read_bytes()
    at = text.index(b'"fill_value": ') + len(b'"fill_value": ')
    meta.write_bytes(text[:at] + b"1" + text[at + 1 :])  # fill value 0 -> 1: still JSON
    problems = verify_store(store)
    assert len(problems) == 1 and "file frames/zarr.json crc32c mismatch" in problems[0], problems
    with pytest.raises(StoreError, match="frames/zarr.json: checksum mismatch"):
        open_store(store)["frames"]
    res = convert("nmnist", pristine[0], store, OPTS)
    assert res.rebuilt == ["file frames/zarr.json crc32c mismatch, written again"]
    assert res.shards_done_before == 5 and not res.repaired
    assert meta.read_bytes() == (pristine[1] / "frames" / "zarr.json").read_bytes()
    assert verify_store(store) == []


def test_damaged_attributes_of_a_store_made_otherwise_need_overwrite(
    store: Path, pristine: tuple[Path, Path]
) -> None:
    """A damaged root cannot say what the store was made with; convert with other parameters does not
    guess: it refuses as for any store made otherwise, and --overwrite replaces it."""
    flip_value(store, "classes")
    other = ConvertOptions(frames=4, size=(16, 16), shard_samples=16)
    with pytest.raises(ConvertError, match=r"zarr.json: damaged \(crc32c mismatch\).*use --overwrite"):
        convert("nmnist", pristine[0], store, other)
    assert verify_store(store) != []  # left as it was
    res = convert("nmnist", pristine[0], store, other, overwrite=True)
    assert res.shards_done_before == 0 and verify_store(store) == []
    assert open_store(store).attrs["frame_shape"][0] == 4


def test_store_written_before_the_root_checksum_reads_as_before_and_gains_it(
    store: Path, pristine: tuple[Path, Path]
) -> None:
    meta = json.loads((store / "_tmkt" / "zarr.json").read_text())
    del meta["attributes"]["checksums"]["root"]  # what tmkt wrote before the root had a checksum
    (store / "_tmkt" / "zarr.json").write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no new warning: the rest of the store is checked as before
        assert list(open_store(store).attrs["classes"]) == [str(d) for d in range(10)]
        FrameDataset(store, "split:train")[0]
    assert unchecked_parts(store) == [] and verify_store(store) == []
    res = runner.invoke(data_app, ["verify", str(store)])
    assert res.exit_code == 0 and res.stdout.strip() == f"{store}: ok"
    convert("nmnist", pristine[0], store, OPTS)  # the same command again records it
    assert "root" in json.loads((store / "_tmkt" / "zarr.json").read_text())["attributes"]["checksums"]
    flip_value(store, "classes")
    assert any("zarr.json crc32c mismatch" in p for p in verify_store(store))


# ------------------------------------------------------------ fuzz

FIT_READS = ("zarr.json", "frames/", "labels/", "valid/", "split/", "rgb/images/", "rgb/labels/", "rgb/split/",
             "rgb/source_ids/", "pairs/")  # fmt: skip
CATEGORIES = (
    ("frames/",),
    ("labels/", "valid/", "split/"),
    ("sample_id/", "source_path/", "n_events/", "source_sha256/"),
    ("rgb/images/",),
    ("rgb/labels/", "rgb/split/", "rgb/source_ids/", "rgb/source_labels/"),
    ("pairs/",),
    ("zarr.json",),  # the store's attributes
)


def chunk_files(store: Path, prefixes: tuple[str, ...]) -> list[str]:
    """Data files (not metadata) of the store below ``prefixes``, sorted; the root ``zarr.json`` when
    ``prefixes`` names it."""
    if prefixes == ("zarr.json",):
        return ["zarr.json"]
    out = []
    for f in sorted(store.rglob("*")):
        rel = f.relative_to(store).as_posix()
        if f.is_file() and "/c/" in rel and rel.startswith(prefixes) and not rel.startswith("_"):
            out.append(rel)
    return out


def flip_still_json(path: Path, rng: np.random.Generator) -> None:
    """Flip a random byte of a JSON file with a random mask, drawn again until the file still parses
    to another document (a flip that breaks the JSON is refused as unreadable anyway): what plain
    zarr would read without a word."""
    data = path.read_bytes()
    doc = json.loads(data)
    while True:
        i, mask = int(rng.integers(len(data))), int(rng.integers(1, 256))
        flipped = data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :]
        try:
            if json.loads(flipped) != doc:
                break
        except ValueError:
            continue
    path.write_bytes(flipped)


@pytest.mark.parametrize("seed", range(14))
def test_fuzz_a_flipped_byte_anywhere_is_caught(
    store: Path, pristine: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    """A random byte of a random file (frames shards, per-sample array chunks, rgb/ and pairs/ chunks,
    the root ``zarr.json``: a flip that keeps it valid JSON): ``verify`` exits 1 naming the file; a
    one-epoch fit that reads the file stops with one line before any step uses a damaged sample
    (every batch served equals the clean store's). The root's damage is repaired by running the same
    ``convert`` again, whatever attribute the flip hit."""
    rng = np.random.default_rng([seed, 12])
    files = chunk_files(store, CATEGORIES[seed % len(CATEGORIES)])
    rel = files[int(rng.integers(len(files)))]
    if rel == "zarr.json":
        flip_still_json(store / rel, rng)
    else:
        size = (store / rel).stat().st_size
        flip(store / rel, int(rng.integers(size)), int(rng.integers(1, 256)))
    res = runner.invoke(data_app, ["verify", str(store)])
    assert res.exit_code == 1 and rel in res.stderr, (rel, res.output)
    if rel.startswith(FIT_READS):
        fit_refuses(store, tmp_path / "run", store / rel, monkeypatch, pristine[1])
    if rel == "zarr.json":
        assert convert("nmnist", pristine[0], store, OPTS).rebuilt
        assert verify_store(store) == [] and same_attrs(store, pristine[1])
