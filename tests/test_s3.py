"""Stores on object storage (issue 13 item 5): ``convert`` on a 2-worker dask cluster -> ``pair`` ->
``fit`` -> ``verify``, all on ``s3://bucket/store.zarr``, against a local S3-compatible server
(moto's threaded server on 127.0.0.1, started and stopped here) through s3fs; the frames equal a local
conversion of the same tree byte for byte. Also: a damaged object is named by ``verify`` and refused
by ``fit``, and running ``convert`` again repairs it (a damaged root ``zarr.json`` too); the lock object; the user mistakes (bad URL,
missing bucket, no credentials, unreachable endpoint) as one line and exit code 2. Nothing leaves
127.0.0.1.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import one_error_line, write_digit_tree
from typer.testing import CliRunner

from tmkt_data.cli import app
from tmkt_data.store import RemotePath, StoreError, open_store, store_location, store_lock
from tmkt_data.store.location import storage_options
from tmkt_train.cli import app as train_app

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

runner = CliRunner()
BUCKET = "bucket"
URL = f"s3://{BUCKET}/store.zarr"
CONVERT = ["--frames", "3", "--size", "16", "--shard-samples", "16"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory):
    """A moto S3 server on 127.0.0.1 with one bucket; the AWS_* settings s3fs users set point at it
    (and nothing else: no credential files, no instance metadata)."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    nowhere = str(tmp_path_factory.mktemp("aws") / "none")
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_SHARED_CREDENTIALS_FILE": nowhere,
        "AWS_CONFIG_FILE": nowhere,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    try:
        with pytest.MonkeyPatch.context() as mp:
            for key in [k for k in os.environ if k.startswith("AWS_")]:
                mp.delenv(key)
            mp.delenv("TMKT_STORAGE_OPTIONS", raising=False)
            for key, value in env.items():
                mp.setenv(key, value)
            fs = RemotePath(f"s3://{BUCKET}/x").fs
            fs.mkdir(BUCKET)
            yield SimpleNamespace(fs=fs, env=env, endpoint=env["AWS_ENDPOINT_URL"])
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster(s3: SimpleNamespace):
    """A 2-worker dask cluster of processes started without any AWS_* variable: the workers reach
    the store only through the connection settings the store's URL carries to them."""
    from distributed import LocalCluster

    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("AWS_")]:
            mp.delenv(key)
        c = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard": False},
        )
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_digit_tree(tmp_path_factory.mktemp("s3raw") / "raw")


@pytest.fixture(scope="module")
def local_store(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("s3local") / "local.zarr"
    res = runner.invoke(app, ["convert", "nmnist", str(raw), str(out), *CONVERT])
    assert res.exit_code == 0, res.output
    return out


@pytest.fixture(scope="module")
def remote_store(s3: SimpleNamespace, cluster, raw: Path) -> str:
    """``s3://bucket/store.zarr``: converted on the cluster, then paired."""
    from distributed import Client

    with Client(cluster) as client:  # the workers see no AWS_* variable
        assert not any(client.run(lambda: any(k.startswith("AWS_") for k in os.environ)).values())
    res = runner.invoke(
        app, ["convert", "nmnist", str(raw), URL, *CONVERT, "--scheduler", cluster.scheduler_address]
    )
    assert res.exit_code == 0, res.output
    assert "shards 5 (0 already done)" in res.output, res.output
    assert not s3.fs.exists(f"{BUCKET}/store.zarr.lock")  # the lock object is gone
    res = runner.invoke(app, ["pair", URL, "digits", "--val-fraction", "0.2"])
    assert res.exit_code == 0, res.output
    left = [k for k in s3.fs.find(BUCKET) if "_tmp/" in k or "_old/" in k or k.endswith(".lock")]
    assert left == []  # the temporary groups were copied into place and removed; no lock left
    return URL


@pytest.mark.slow
def test_s3_round_trip_convert_pair_fit_verify(
    s3: SimpleNamespace, remote_store: str, local_store: Path, tmp_path: Path
) -> None:
    # the frames shards are the local conversion's bytes, and every array reads the same
    n_shards = open_store(local_store).attrs["n_shards"]
    for k in range(n_shards):
        rel = f"frames/c/{k}/0/0/0/0"
        assert s3.fs.cat_file(f"{BUCKET}/store.zarr/{rel}") == (local_store / rel).read_bytes(), rel
    remote, local = open_store(remote_store), open_store(local_store)
    for name in ("frames", "labels", "split", "valid", "sample_id", "source_sha256", "n_events"):
        assert np.array_equal(np.asarray(remote[name][:]), np.asarray(local[name][:])), name
    assert remote.attrs["params_hash"] == local.attrs["params_hash"]

    res = runner.invoke(app, ["inspect", remote_store, "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["store"] == URL and info["samples"] == 80 and info["frames_bytes_on_disk"] > 0

    out = tmp_path / "run"  # the run folder stays local
    args = ["fit", remote_store, "--out", str(out), "--model", "demo", "--epochs", "1", "--batch-size", "16"]
    res = runner.invoke(train_app, [*args, "--workers", "1", "--device", "cpu", "--quiet"])
    assert res.exit_code == 0, res.output
    assert (out / "checkpoint.pt").is_file() and f'store = "{URL}"' in (out / "config.toml").read_text()

    res = runner.invoke(app, ["verify", remote_store])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == f"{URL}: ok"


@pytest.mark.slow
def test_s3_damaged_object_is_named_refused_and_repaired(
    s3: SimpleNamespace, remote_store: str, raw: Path, tmp_path: Path
) -> None:
    s3.fs.copy(f"{BUCKET}/store.zarr", f"{BUCKET}/damaged.zarr", recursive=True)
    url = f"s3://{BUCKET}/damaged.zarr"
    key = f"{BUCKET}/damaged.zarr/frames/c/2/0/0/0/0"
    blob = bytearray(s3.fs.cat_file(key))
    blob[40] ^= 0xFF
    s3.fs.pipe_file(key, bytes(blob))

    res = runner.invoke(app, ["verify", url])
    assert res.exit_code == 1, res.output
    assert f"{url}: shard 2: file frames/c/2/0/0/0/0 crc32c mismatch" in res.stderr, res.stderr

    args = [
        "fit",
        url,
        "--out",
        str(tmp_path / "run"),
        "--model",
        "demo",
        "--epochs",
        "1",
        "--batch-size",
        "16",
    ]
    line = one_error_line(runner.invoke(train_app, [*args, "--workers", "0", "--device", "cpu", "--quiet"]))
    assert f"{url}/frames/c/2/0/0/0/0: checksum mismatch" in line and "tmkt-data verify" in line, line

    res = runner.invoke(app, ["convert", "nmnist", str(raw), url, *CONVERT])  # resumes: redoes shard 2
    assert res.exit_code == 0, res.output
    assert "4 already done, 1 damaged and converted again" in res.output, res.output
    assert runner.invoke(app, ["verify", url]).exit_code == 0  # rgb/ and pairs/ were kept

    root = f"{BUCKET}/damaged.zarr/zarr.json"  # the store's attributes: a class name "3" read as "2"
    text = s3.fs.cat_file(root)
    at = text.index(b'"3"', text.index(b'"classes"')) + 1
    s3.fs.pipe_file(root, text[:at] + b"2" + text[at + 1 :])
    res = runner.invoke(app, ["verify", url])
    assert res.exit_code == 1 and f"{url}: store attributes: file zarr.json crc32c mismatch" in res.stderr
    with pytest.raises(StoreError, match="zarr.json: checksum mismatch"):
        open_store(url)
    res = runner.invoke(app, ["convert", "nmnist", str(raw), url, *CONVERT])  # rebuilds the attributes
    assert res.exit_code == 0 and "5 already done)" in res.output, res.output
    assert runner.invoke(app, ["verify", url]).exit_code == 0
    assert list(open_store(url).attrs["classes"]) == [str(d) for d in range(10)]


def test_s3_lock_object_keeps_a_second_writer_out(s3: SimpleNamespace, raw: Path) -> None:
    url = f"s3://{BUCKET}/locked.zarr"
    holder = {"pid": 1, "host": "elsewhere", "action": "tmkt-data convert", "started": "now"}
    s3.fs.pipe_file(f"{BUCKET}/locked.zarr.lock", json.dumps(holder).encode())
    line = one_error_line(runner.invoke(app, ["convert", "nmnist", str(raw), url, *CONVERT]))
    assert f"{url}: in use by 'tmkt-data convert' (pid 1 on elsewhere" in line, line
    assert f"delete {url}.lock" in line
    assert not s3.fs.exists(f"{BUCKET}/locked.zarr")  # nothing written

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead = {**holder, "pid": int(gone.stdout), "host": socket.gethostname()}  # a crashed run here
    s3.fs.pipe_file(f"{BUCKET}/locked.zarr.lock", json.dumps(dead).encode())
    with store_lock(url, "test") as lock:  # taken over
        assert str(lock) == f"{url}.lock"
        assert json.loads(s3.fs.cat_file(f"{BUCKET}/locked.zarr.lock"))["pid"] == os.getpid()
    assert not s3.fs.exists(f"{BUCKET}/locked.zarr.lock")


def test_s3_lock_refuses_a_server_that_ignores_conditional_writes(
    s3: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RemotePath, "create", RemotePath.write_bytes)  # what such a server does
    with pytest.raises(StoreError, match="does not honour conditional writes"):
        with store_lock(f"s3://{BUCKET}/any.zarr", "test"):
            pass  # pragma: no cover
    assert not s3.fs.exists(f"{BUCKET}/any.zarr.lock")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://bucket", "s3://bucket: expected s3://BUCKET/PATH"),
        ("nope://bucket/x.zarr", "nope://bucket/x.zarr: unknown storage protocol 'nope'"),
        ("s3://nobucket/x.zarr", "s3://nobucket/x.zarr: bucket 'nobucket' does not exist"),
    ],
)
def test_s3_bad_output_url_is_one_line(s3: SimpleNamespace, raw: Path, url: str, message: str) -> None:
    line = one_error_line(runner.invoke(app, ["convert", "nmnist", str(raw), url, *CONVERT]))
    assert line.startswith(f"error: {message}"), line


def test_s3_missing_store_credentials_and_endpoint_are_one_line(
    s3: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    line = one_error_line(runner.invoke(app, ["verify", f"s3://{BUCKET}/none.zarr"]))
    assert line == f"error: s3://{BUCKET}/none.zarr: no such store", line
    line = one_error_line(
        runner.invoke(train_app, ["fit", "s3://nobucket/x.zarr", "--out", str(tmp_path / "r")])
    )
    assert "s3://nobucket/x.zarr: no such store" in line, line

    with monkeypatch.context() as mp:
        mp.delenv("AWS_ACCESS_KEY_ID")
        mp.delenv("AWS_SECRET_ACCESS_KEY")
        line = one_error_line(runner.invoke(app, ["inspect", URL]))
        assert line.startswith(f"error: {URL}: no credentials for object storage"), line
    with monkeypatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
        mp.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's retries take seconds
        line = one_error_line(runner.invoke(app, ["verify", URL]))
        assert line.startswith(f"error: {URL}: cannot reach the object store"), line


def test_locations_and_connection_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A string with :// is a URL, file:// and everything else a local Path; a Path made from a URL
    (``s3:/b/k``) is the URL; the settings come from the environment and travel with the object."""
    assert store_location("c10.zarr") == Path("c10.zarr")
    assert store_location(Path("runs/c10.zarr")) == Path("runs/c10.zarr")
    assert store_location("file:///tmp/c10.zarr") == Path("/tmp/c10.zarr")
    assert store_location(Path("s3://b/c10.zarr")) == RemotePath("s3://b/c10.zarr")
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://a:1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://b:2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("TMKT_STORAGE_OPTIONS", '{"requester_pays": true}')
    opts = storage_options("s3")
    assert opts["endpoint_url"] == "http://b:2" and (opts["key"], opts["secret"]) == ("id", "secret")
    assert opts["client_kwargs"] == {"region_name": "eu-west-1"} and opts["requester_pays"] is True
    loc = store_location("s3://b/dir/c10.zarr")
    assert (
        isinstance(loc, RemotePath)
        and str(loc / "frames" / "zarr.json") == "s3://b/dir/c10.zarr/frames/zarr.json"
    )
    back = pickle.loads(pickle.dumps(loc))
    assert back == loc and back.options == loc.options and "secret" not in repr(loc)
    monkeypatch.setenv("TMKT_STORAGE_OPTIONS", "[1]")
    with pytest.raises(StoreError, match="TMKT_STORAGE_OPTIONS"):
        store_location("s3://b/c10.zarr")
