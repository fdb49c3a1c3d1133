"""Downloads from a real HTTP server on 127.0.0.1 that drops connections, fails, lies and stalls."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from segnet_ros.core.errors import ModelError
from segnet_ros.zoo import resolve_network
from segnet_ros.zoo.archive import Limits
from segnet_ros.zoo.download import DownloadError, DownloadPolicy, fetch
from segnet_ros.zoo.install import download
from segnet_ros.zoo.registry import lookup

from zoo_helpers import make_archive, zoo_folder

FAST = DownloadPolicy(connect_timeout=5, read_timeout=5, retries=3, backoff=0)
MODEL = lookup("fcn-resnet18-cityscapes-512x256")


@pytest.fixture
def published(tmp_path, model_server, monkeypatch):
    """The model's archive (bytes) on the server, whose address replaces the published one."""
    archive = make_archive(tmp_path / MODEL.archive, zoo_folder(tmp_path / "src", MODEL))
    model_server.publish(archive, MODEL.archive)
    monkeypatch.setenv("SEGNET_ROS_MODEL_URL_BASE", model_server.url_base)
    return archive.read_bytes()


def _leftovers(root):
    return sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) if root.exists() else []


def _assert_installed(zoo_dirs, tmp_path):
    for name in ("fcn_resnet18.onnx", "classes.txt", "colors.txt"):
        assert (zoo_dirs.models / MODEL.dir / name).read_bytes() == (tmp_path / "src" / MODEL.dir / name).read_bytes()
    assert _leftovers(zoo_dirs.models) == [MODEL.dir]  # no .part, no archive, no staging folder


def test_good_download_reports_progress_and_installs(published, model_server, zoo_dirs, tmp_path):
    seen = []
    installed = download(MODEL, policy=FAST, progress=lambda done, total: seen.append((done, total)))
    assert installed.fresh and installed.ours and installed.folder == zoo_dirs.models / MODEL.dir
    _assert_installed(zoo_dirs, tmp_path)
    assert seen[0] == (0, len(published)) and seen[-1] == (len(published), len(published))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert model_server.requests == [(f"/models/{MODEL.archive}", None)]
    again = download(MODEL, policy=FAST)
    assert not again.fresh and len(model_server.requests) == 1  # installed: nothing fetched twice


def test_connection_cut_halfway_resumes_with_range(published, model_server, zoo_dirs, tmp_path):
    model_server.cuts, model_server.cut_after = 1, len(published) // 2
    seen = []
    download(MODEL, policy=FAST, progress=lambda done, total: seen.append(done))
    _assert_installed(zoo_dirs, tmp_path)
    half = len(published) // 2
    assert [r for _, r in model_server.requests] == [None, f"bytes={half}-"]
    assert half in seen and seen[-1] == len(published)


def test_server_without_range_support_restarts_from_zero(published, model_server, zoo_dirs, tmp_path):
    model_server.honour_range = False
    model_server.cuts, model_server.cut_after = 2, len(published) // 3
    download(MODEL, policy=FAST)
    _assert_installed(zoo_dirs, tmp_path)
    third = len(published) // 3
    assert [r for _, r in model_server.requests] == [None, f"bytes={third}-", f"bytes={third}-"]


def test_part_file_from_an_earlier_run_is_resumed(published, model_server, zoo_dirs, tmp_path):
    zoo_dirs.models.mkdir(parents=True)
    half = len(published) // 2
    (zoo_dirs.models / f".{MODEL.archive}.part").write_bytes(published[:half])
    download(MODEL, policy=FAST)
    _assert_installed(zoo_dirs, tmp_path)
    assert [r for _, r in model_server.requests] == [f"bytes={half}-"]


def test_complete_part_file_is_accepted_on_416(published, model_server, tmp_path):
    target = tmp_path / "m.tar.gz"
    (tmp_path / "m.tar.gz.part").write_bytes(published)
    fetch(f"{model_server.url_base}/{MODEL.archive}", target, FAST)
    assert target.read_bytes() == published and not (tmp_path / "m.tar.gz.part").exists()
    assert [r for _, r in model_server.requests] == [f"bytes={len(published)}-"]


def test_server_errors_are_retried(published, model_server, zoo_dirs, tmp_path):
    model_server.failures = 2
    download(MODEL, policy=FAST)
    _assert_installed(zoo_dirs, tmp_path)
    assert len(model_server.requests) == 3


def test_persistent_server_error_gives_up_with_the_offline_way_out(published, model_server, zoo_dirs):
    model_server.failures = 100
    with pytest.raises(DownloadError) as caught:
        download(MODEL, policy=DownloadPolicy(retries=2, backoff=0))
    message = str(caught.value)
    assert "HTTP 500" in message and "gave up after 3 attempts" in message
    assert f"segnet-ros models install {MODEL.archive}" in message
    assert len(model_server.requests) == 3 and _leftovers(zoo_dirs.models) == []


def test_missing_file_is_not_retried(model_server, monkeypatch, zoo_dirs):
    monkeypatch.setenv("SEGNET_ROS_MODEL_URL_BASE", model_server.url_base)
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(MODEL, policy=FAST)
    assert len(model_server.requests) == 1


@pytest.mark.parametrize("body,content_type,message", [
    (b"<html><body>Please sign in</body></html>", "text/html; charset=utf-8",
     "answered with text/html, not a model archive"),
    (b'{"error": "quota exceeded"}', "application/json", "answered with application/json, not a model archive"),
    (b"<!DOCTYPE html><html>moved</html>", "application/octet-stream", "is not a gzip archive"),
], ids=["html", "json", "html-as-binary"])
def test_a_page_instead_of_an_archive_is_refused(model_server, monkeypatch, zoo_dirs, body, content_type, message):
    monkeypatch.setenv("SEGNET_ROS_MODEL_URL_BASE", model_server.url_base)
    model_server.publish(body, MODEL.archive)
    model_server.content_type = content_type
    with pytest.raises(DownloadError, match=message):
        download(MODEL, policy=FAST)
    assert len(model_server.requests) == 1 and _leftovers(zoo_dirs.models) == []  # not even a 0-byte .part


@pytest.mark.parametrize("earlier_part", [False, True], ids=["fresh", "resumed"])
def test_a_declared_size_over_the_limit_is_refused_before_reading(published, model_server, zoo_dirs, earlier_part):
    declared = 50 * 10**9
    model_server.declared_length = declared
    if earlier_part:  # a resumed download is refused on the total its Content-Range declares
        zoo_dirs.models.mkdir(parents=True)
        (zoo_dirs.models / f".{MODEL.archive}.part").write_bytes(published[: len(published) // 2])
    with pytest.raises(DownloadError) as caught:
        download(MODEL, policy=FAST)
    assert f"{MODEL.archive} is {declared} bytes, over the {Limits().max_archive}-byte limit" in str(caught.value)
    assert len(model_server.requests) == 1 and _leftovers(zoo_dirs.models) == []  # refused, and nothing kept


def test_a_body_of_undeclared_size_is_stopped_at_the_limit(model_server, monkeypatch, zoo_dirs):
    monkeypatch.setenv("SEGNET_ROS_MODEL_URL_BASE", model_server.url_base)
    model_server.publish(b"\x1f\x8b" + bytes(3 << 20), MODEL.archive)
    model_server.send_length = False
    seen = []
    with pytest.raises(DownloadError, match=f"{MODEL.archive} sends more than {1 << 20} bytes, the limit"):
        download(MODEL, policy=FAST, limits=Limits(max_archive=1 << 20), progress=lambda done, _: seen.append(done))
    assert max(seen) <= 1 << 20 and len(model_server.requests) == 1 and _leftovers(zoo_dirs.models) == []


def test_a_redirect_loop_is_one_line(model_server, monkeypatch, zoo_dirs):
    monkeypatch.setenv("SEGNET_ROS_MODEL_URL_BASE", model_server.url_base)
    model_server.redirect_loop = True
    with pytest.raises(DownloadError) as caught:
        download(MODEL, policy=FAST)
    message = str(caught.value)
    assert "\n" not in message and "the server's redirects go round in a loop or are too many (HTTP 302)" in message
    assert _leftovers(zoo_dirs.models) == []


def test_truncated_gzip_is_refused_and_nothing_installed(published, model_server, zoo_dirs):
    model_server.publish(published[: len(published) * 2 // 3], MODEL.archive)
    with pytest.raises(ModelError, match="damaged or truncated archive"):
        download(MODEL, policy=FAST)
    assert _leftovers(zoo_dirs.models) == []


def test_offline_names_the_install_command(monkeypatch, zoo_dirs):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("SEGNET_ROS_MODEL_URL_BASE", f"http://127.0.0.1:{port}/models")
    with pytest.raises(DownloadError) as caught:
        download(MODEL, policy=DownloadPolicy(retries=1, backoff=0))
    message = str(caught.value)
    assert f"cannot reach 127.0.0.1:{port}" in message and "gave up after 2 attempts" in message
    assert f"run: segnet-ros models install {MODEL.archive}" in message and MODEL.url not in message


def test_silent_server_times_out(published, model_server, tmp_path):
    model_server.stall = 1.0
    with pytest.raises(DownloadError, match=r"\(timed out\) \(gave up after 1 attempt\)$"):
        fetch(f"{model_server.url_base}/{MODEL.archive}", tmp_path / "m.tar.gz",
              DownloadPolicy(read_timeout=0.2, retries=0))
    assert not (tmp_path / "m.tar.gz").exists()


def test_proxy_from_the_environment_is_used(published, model_server, monkeypatch, zoo_dirs, tmp_path):
    monkeypatch.setenv("SEGNET_ROS_MODEL_URL_BASE", "http://models.example.invalid/models")
    monkeypatch.setenv("http_proxy", f"http://{model_server.address}")
    download(MODEL, policy=FAST)
    _assert_installed(zoo_dirs, tmp_path)
    assert model_server.requests[0][0] == f"http://models.example.invalid/models/{MODEL.archive}"


def test_auto_download_through_resolve_network(published, model_server, zoo_dirs):
    with pytest.raises(ModelError, match=f"install it with: segnet-ros models download {MODEL.name}$"):
        resolve_network("fcn_resnet18_cityscapes")
    assert model_server.requests == []
    files = resolve_network("fcn_resnet18_cityscapes", auto_download=True)
    assert files.onnx == zoo_dirs.models / MODEL.dir / "fcn_resnet18.onnx" and files.name == MODEL.name
    assert files.labels is not None and files.colors is not None and len(model_server.requests) == 1


def test_a_real_fcn_resnet18_downloads_and_runs(tmp_path, model_server, monkeypatch, zoo_dirs):
    from segnet_ros.backends import create_backend
    from segnet_ros.core import SegNet, load_model
    from segnet_ros.core.refnet import write_reference_model

    voc = lookup("fcn-resnet18-voc")
    write_reference_model(tmp_path / voc.dir, voc.width, voc.height, voc.classes)
    model_server.publish(make_archive(tmp_path / voc.archive, tmp_path / voc.dir), voc.archive)
    monkeypatch.setenv("SEGNET_ROS_MODEL_URL_BASE", model_server.url_base)
    model = load_model(resolve_network("fcn-resnet18-pascal-voc", auto_download=True))
    assert (model.input_width, model.input_height, model.grid_width, model.grid_height) == (320, 320, 10, 10)
    net = SegNet(model, create_backend("onnxruntime", model))
    mask = net.process(np.zeros((240, 320, 3), np.uint8), "bgr8").class_mask()
    assert mask.shape == (240, 320) and mask.max() < 21


def test_a_leftover_folder_without_a_model_is_replaced(published, zoo_dirs, tmp_path):
    (zoo_dirs.models / MODEL.dir).mkdir(parents=True)
    (zoo_dirs.models / MODEL.dir / "classes.txt").write_text("stale\n")
    assert resolve_network(MODEL.name, auto_download=True).onnx.is_file()
    _assert_installed(zoo_dirs, tmp_path)
    assert "stale" not in (zoo_dirs.models / MODEL.dir / "classes.txt").read_text()
