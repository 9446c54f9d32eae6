"""`zoo serve` over real HTTP on 127.0.0.1: a server started as a user starts it, asked with real scans of
MNIST test digits, and with every kind of bad request a client can send."""

import base64
import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

import zoo
from benchmarks.scans import make_scans, read_mnist_test
from tests.commands import zoo_command
from zoo.infer import predict_files
from zoo.weights import read_manifest

ZOO = shutil.which("zoo", path=str(Path(sys.executable).parent)) or shutil.which("zoo")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served(*args: str, env: dict[str, str] | None = None, port: int | None = None, cwd=None, zoo: str = ZOO,
           terminate: bool = False):
    """``zoo serve ARGS...`` on 127.0.0.1 as a user starts it, until /health answers; stopped as a user stops
    it, with Ctrl-C (SIGINT to its processes), which must end it cleanly.
    ``port``: a free one if None; 8000, the default, is not named on the command line. ``zoo``: the console script.
    ``terminate``: stopped as a supervisor stops it instead, SIGTERM to the command's process alone."""
    command = [zoo, "serve", *args] if port == 8000 else [zoo, "serve", *args, "--port", str(port or free_port())]
    port = port or int(command[-1])
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, env={**os.environ, **(env or {})},
                                   stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True, cwd=cwd)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 240
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    pytest.fail(f"zoo serve exited with {process.returncode}:\n{log.read()[-3000:]}")
                with contextlib.suppress(requests.ConnectionError):
                    key = {"X-API-Key": env["LIT_SERVER_API_KEY"]} if "LIT_SERVER_API_KEY" in (env or {}) else {}
                    if requests.get(f"{url}/health", headers=key, timeout=5).status_code == 200:
                        break
                assert time.monotonic() < deadline, "zoo serve did not answer /health within 240 s"
                time.sleep(0.5)
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.terminate() if terminate else os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
                deadline = time.monotonic() + 30
                while _group_alive(process.pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
            except subprocess.TimeoutExpired:
                pass
            left = _group_alive(process.pid)
            if left:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            assert not left, "zoo serve left processes running after it was stopped"
        log.seek(0)
        output = log.read()  # Ctrl-C stops it cleanly, and nothing meant for programmers was printed
        assert process.returncode == 0 and "Traceback" not in output and "Warning" not in output, output[-3000:]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def lenet_server():
    with served("lenet5_mnist") as url:
        yield url


@pytest.fixture(scope="module")
def scans(data_dir, tmp_path_factory):
    """40 MNIST test digits as a scanner gives them (dark ink on light, uneven paper, JPEG); their labels."""
    images, labels = read_mnist_test(data_dir)
    folder = tmp_path_factory.mktemp("scans")
    truth = make_scans(images[:40], labels[:40], folder)
    return folder, [int(truth[path]) for path in sorted(truth)]


def _upload(url, *files: Path, **fields):
    return requests.post(f"{url}/predict", files=[("image", (f.name, f.read_bytes())) for f in files],
                         data=fields, timeout=60)


def test_scans_get_the_classes_zoo_infer_gives_and_mostly_the_right_digit(lenet_server, scans):
    folder, labels = scans
    files = sorted(folder.iterdir())
    answer = _upload(lenet_server, *files, top_k=3)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["image"] for p in predictions] == [f.name for f in files]
    rows, _ = predict_files("lenet5_mnist", files, top_k=3)  # zoo infer's code on the same files
    assert [p["class"] for p in predictions] == [row["class"] for row in rows]
    for prediction, row in zip(predictions, rows):
        assert [(c["class"], pytest.approx(c["probability"], abs=1e-5)) for c in prediction["top_k"]] == \
            [(name, pytest.approx(p, abs=1e-5)) for name, p in row["top_k"]]
    correct = sum(int(p["class"]) == y for p, y in zip(predictions, labels))
    assert correct >= 0.9 * len(labels), f"{correct} of {len(labels)} scans read right"


def test_base64_json_gives_the_answer_of_the_upload(lenet_server, scans):
    folder, _ = scans
    files = sorted(folder.iterdir())[:4]
    encoded = [base64.b64encode(f.read_bytes()).decode() for f in files]
    by_json = requests.post(f"{lenet_server}/predict", json={"images": encoded, "top_k": 2}, timeout=60)
    one = requests.post(f"{lenet_server}/predict", json={"image": encoded[0]}, timeout=60)
    by_upload = _upload(lenet_server, *files, top_k=2).json()["predictions"]
    assert by_json.status_code == one.status_code == 200
    assert [p["class"] for p in by_json.json()["predictions"]] == [p["class"] for p in by_upload]
    assert [p["image"] for p in by_json.json()["predictions"]] == ["image 1", "image 2", "image 3", "image 4"]
    assert len(one.json()["predictions"][0]["top_k"]) == 5  # the server's --top_k


def test_info_health_and_openapi_say_what_is_served(lenet_server):
    info = requests.get(f"{lenet_server}/info", timeout=10).json()["model"]
    entry = read_manifest()["lenet5_mnist"]
    assert info["weights"] == "lenet5_mnist" and info["sha256"] == entry["sha256"]
    assert info["model"] == "LeNet5" and info["predict"] == "classify"
    assert info["class_names"] == [str(d) for d in range(10)] and info["input_framing"] == "mnist"
    assert "framed as MNIST" in info["input"] and info["zoo_version"]
    assert requests.get(f"{lenet_server}/health", timeout=10).text == "ok"
    spec = requests.get(f"{lenet_server}/openapi.json", timeout=10).json()
    assert "/predict" in spec["paths"]
    assert requests.get(f"{lenet_server}/docs", timeout=10).status_code == 200


def _bomb() -> bytes:
    """A PNG whose header says 12,000 x 12,000 pixels (144 million, over Pillow's limit): a few kB on the wire."""
    buffer = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buffer, format="PNG")
    return buffer.getvalue()


def _png(size=(28, 28)) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, 255).save(buffer, format="PNG")
    return buffer.getvalue()


# What a client can get wrong, and the answer it gets: (what, request keyword arguments, status, message).
BAD_REQUESTS = [
    ("an empty body", dict(), 400, "empty request"),
    ("not JSON", dict(data=b"{oops", headers={"Content-Type": "application/json"}), 400, "not valid JSON"),
    ("a JSON list", dict(json=[1, 2]), 422, "must be an object"),
    ("plain text", dict(data=b"hello", headers={"Content-Type": "text/plain"}), 415, "content type 'text/plain'"),
    ("a form without files", dict(data={"a": "b"}), 415, "application/x-www-form-urlencoded"),
    ("broken multipart", dict(data=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=xyz"}), 400,
     "multipart body does not parse"),
    ("not an image", dict(files={"image": ("notes.txt", b"shopping list")}), 422,
     "cannot read image notes.txt: Pillow does not recognise it as an image"),
    ("an empty file", dict(files={"image": ("empty.png", b"")}), 422, "empty.png is empty"),
    ("a wrong field", dict(files={"picture": ("d.png", _png())}), 422, "unknown field 'picture'"),
    ("text in the image field", dict(files={"image": (None, "digit.png")}), 422, "image field 1 is text, not a file"),
    ("no images in JSON", dict(json={"images": []}), 422, "no images"),
    ("bad base64", dict(json={"image": "not base64!"}), 422, "image 1 is not valid base64"),
    ("a number for an image", dict(json={"image": 7}), 422, "image 1 is not a base64 string (got int 7)"),
    ("top_k out of range", dict(json={"image": base64.b64encode(_png()).decode(), "top_k": 0}), 422,
     "top_k must be a whole number from 1 to 1000, got 0"),
    ("top_k not a number", dict(files={"image": ("d.png", _png())}, data={"top_k": "many"}), 422, "top_k must be"),
    ("a decompression bomb", dict(files={"image": ("bomb.png", _bomb())}), 422, "bomb.png is too large to read"),
    ("a body over the limit", dict(files={"image": ("big.png", b"\0" * (11 * 1024 * 1024))}), 413,
     "more than this server's limit"),
    ("a pickle", dict(data=b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.",
                      headers={"Content-Type": "application/octet-stream"}), 415, "content type"),
]


@pytest.mark.parametrize("what, request_args, status, message", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_a_bad_request_gets_a_4xx_that_says_what_was_wrong(lenet_server, what, request_args, status, message):
    answer = requests.post(f"{lenet_server}/predict", timeout=60, **request_args)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and (message is None or message in detail), detail


def test_after_every_bad_request_the_server_still_answers_right(lenet_server, scans):
    folder, labels = scans
    for _, request_args, _, _ in BAD_REQUESTS:
        assert requests.post(f"{lenet_server}/predict", timeout=60, **request_args).status_code < 500
    answer = _upload(lenet_server, folder / "scan_00000.jpg")
    assert answer.status_code == 200 and int(answer.json()["predictions"][0]["class"]) == labels[0]


@pytest.mark.slow
def test_dynamic_batching_answers_each_request_with_its_own_images_and_sigterm_stops_it(scans):
    folder, _ = scans
    files = sorted(folder.iterdir())[:12]
    alone = {}
    from concurrent.futures import ThreadPoolExecutor

    bad = BAD_REQUESTS[6][1]  # not an image: refused by the model's worker, inside a batch
    with served("lenet5_mnist", "--max_batch_size", "8", "--batch_timeout", "0.05", terminate=True) as url:
        for f in files:
            alone[f.name] = _upload(url, f).json()["predictions"][0]
        with ThreadPoolExecutor(8) as pool:  # requests that arrive together share forward passes
            together = list(pool.map(lambda f: _upload(url, f, top_k=5).json()["predictions"][0], files))
            mixed = list(pool.map(lambda i: _upload(url, files[i]) if i % 2 else
                                  requests.post(f"{url}/predict", timeout=60, **bad), range(8)))
    for f, prediction in zip(files, together):
        assert prediction["image"] == f.name and prediction["class"] == alone[f.name]["class"]
        assert prediction["probability"] == pytest.approx(alone[f.name]["probability"], abs=1e-5)
    # a bad request batched with good ones is answered alone: the good ones are not refused with it
    assert [answer.status_code for answer in mixed] == [422, 200] * 4
    assert all("Pillow does not recognise" in answer.json()["detail"] for answer in mixed[::2])
    assert [a.json()["predictions"][0]["class"] for a in mixed[1::2]] == [alone[files[i].name]["class"] for i in (1, 3, 5, 7)]


@pytest.mark.slow
def test_a_generator_draws_the_samples_asked_for_fixed_by_the_seed():
    with served("cgan_mnist") as url:
        first = requests.post(f"{url}/predict", json={"n": 3, "seed": 5, "labels": 7}, timeout=60)
        again = requests.post(f"{url}/predict", json={"n": 3, "seed": 5, "labels": "7"}, timeout=60)
        other = requests.post(f"{url}/predict", json={"n": 3, "seed": 6, "labels": 7}, timeout=60)
        bad = {json.dumps(body): requests.post(f"{url}/predict", json=body, timeout=60)
               for body in ({"n": 0}, {"n": 100000}, {"n": 2, "labels": "cat"}, {"n": True}, {"count": 2})}
        upload = requests.post(f"{url}/predict", files={"image": ("d.png", _png())}, timeout=60)
    assert first.status_code == 200 and first.json()["images"] == again.json()["images"] != other.json()["images"]
    images = [Image.open(io.BytesIO(base64.b64decode(png))) for png in first.json()["images"]]
    assert [image.size for image in images] == [(28, 28)] * 3
    assert {key: answer.status_code for key, answer in bad.items()} == {key: 422 for key in bad}
    assert "label 'cat' is not a class of GAN" in bad['{"n": 2, "labels": "cat"}'].json()["detail"]
    assert "n must be a whole number from 1 to 256" in bad['{"n": 0}'].json()["detail"]
    assert upload.status_code == 415 and "draws images: send JSON" in upload.json()["detail"]


@pytest.mark.slow
def test_an_autoencoder_answers_reconstructions(scans):
    folder, _ = scans
    with served("ae_mnist") as url:
        answer = _upload(url, folder / "scan_00000.jpg")
        top_k = _upload(url, folder / "scan_00000.jpg", top_k=3)
    (reconstruction,) = answer.json()["reconstructions"]
    assert reconstruction["image"] == "scan_00000.jpg"
    assert Image.open(io.BytesIO(base64.b64decode(reconstruction["png"]))).size == (28, 28)
    assert top_k.status_code == 422 and "unknown field 'top_k'" in top_k.json()["detail"]


@pytest.mark.slow
def test_with_an_api_key_in_the_environment_only_requests_that_carry_it_are_answered(scans):
    folder, _ = scans
    with served("lenet5_mnist", env={"LIT_SERVER_API_KEY": "s3cret"}) as url:
        without = _upload(url, folder / "scan_00000.jpg")
        wrong = requests.post(f"{url}/predict", files={"image": ("0.jpg", (folder / "scan_00000.jpg").read_bytes())},
                              headers={"X-API-Key": "guess"}, timeout=60)
        right = requests.post(f"{url}/predict", files={"image": ("0.jpg", (folder / "scan_00000.jpg").read_bytes())},
                              headers={"X-API-Key": "s3cret"}, timeout=60)
        closed = [requests.get(f"{url}/{path}", timeout=10).status_code for path in ("health", "info")]
    assert without.status_code == wrong.status_code == 401
    assert right.status_code == 200 and right.json()["predictions"][0]["image"] == "0.jpg"
    assert closed == [401, 401]


def test_without_litserve_the_command_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "litserve" else real(name, *a))
    result = zoo_command("serve", "lenet5_mnist", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == ('zoo serve: error: zoo serve needs LitServe, an optional extra: '
                                             'pip install "lightning-zoo[serve]"')


@pytest.mark.parametrize("cores, workers, threads", [(1, 1, 1), (2, 1, 1), (2, 2, 1), (16, 1, 15), (16, 2, 7), (16, 4, 3)])
def test_each_model_process_gets_the_cores_the_http_process_leaves_shared_among_the_workers(
        monkeypatch, cores, workers, threads):
    import torch

    from zoo.serve import ZooAPI, cpu_threads_per_worker

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert cpu_threads_per_worker(workers) == threads
    before, ctrl_c = torch.get_num_threads(), signal.getsignal(signal.SIGINT)
    try:
        api = ZooAPI("lenet5_mnist", cpu_threads=threads)
        api.setup("cpu")
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
        signal.signal(signal.SIGINT, ctrl_c)  # setup leaves Ctrl-C to the command


def test_a_model_that_takes_no_images_is_refused_before_the_server_starts(tmp_path):
    zoo.create_model("lstm_forecaster").save_pretrained(tmp_path / "forecaster")
    result = zoo_command("serve", "forecaster", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "zoo serve serves image classifiers, autoencoders, VAEs and GANs: LSTMForecaster takes sequences and " \
           "gives values" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["forecaster"]  # nothing written where the user stood


def test_a_port_in_use_is_named_before_the_server_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = zoo_command("serve", "lenet5_mnist", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use): another server may have it; choose " \
           "another with --port N" in result.stderr


@pytest.mark.slow
def test_a_checkpoint_of_zoo_fit_is_served(tmp_path, data_dir):
    fit = zoo_command("fit", "--config", "lenet5_digits", "--trainer.max_epochs", "1", cwd=tmp_path,
                      env={"ZOO_DATA_DIR": str(data_dir)})
    assert fit.returncode == 0, fit.stderr[-2000:]
    (checkpoint,) = (tmp_path / "runs/lenet5_digits/version_0/checkpoints").glob("last.ckpt")
    with served(str(checkpoint)) as url:
        info = requests.get(f"{url}/info", timeout=10).json()["model"]
        answer = requests.post(f"{url}/predict", files={"image": ("d.png", _png((8, 8)))}, timeout=60)
    assert info["model"] == "LeNet5" and info["weights"] == "last.ckpt" and len(info["sha256"]) == 64
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 1
