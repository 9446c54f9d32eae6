"""``zoo serve`` under load and bad input: throughput (images/s) and p50/p99 latency at 1, 8 and 32
concurrent clients, with and without dynamic batching, against the same model behind a minimal ASGI
endpoint; the answers to malformed requests; the server's memory over 20,000 requests.

    python -m benchmarks.serve [--data_dir DIR] [--weights lenet5_mnist alexnet_fashionmnist]
                               [--requests 1000] [--repeats 3] [--memory_requests 20000] [--quick]

Everything runs on 127.0.0.1, one server at a time: ``zoo serve WEIGHTS`` as a user starts it (its
own process group, stopped with SIGINT as Ctrl-C stops it), once as it comes, once with ``--workers 2``
and once with ``--max_batch_size 32 --batch_timeout 0.005``; and the minimal endpoint, this script's
``--endpoint WEIGHTS``: a raw ASGI app under uvicorn, one process, that cuts the multipart upload
apart by hand and runs the model in ``torch.inference_mode`` with the image reading ``zoo serve``
uses (:func:`zoo.data.folder.read_image`, framed as the weights say), answering ``{"class": ...}``
(one request at a time, in its event loop; no access log). The difference between the two is the
serving stack: FastAPI, LitServe's queues and worker process, the zoo's request checks and answer,
access logs.

Each request is a multipart ``POST /predict`` of one real MNIST or Fashion-MNIST test image as a PNG,
made here from the test split (torchvision's classes, nothing downloaded). Every answer is checked:
status 200 and the class the same model predicts in this process for the same PNG.

The malformed run sends every tenth request broken (an empty body, a file that is not an image,
multipart that does not parse, a wrong field, invalid JSON, bad base64, a wrong content type, a
declared body over the 10 MB limit, a bad ``top_k``) to each ``zoo serve``: each must get a 4xx, each
good one its right answer, and none a 5xx or no answer. The memory run starts a fresh ``zoo serve``,
sends 500 requests (a tenth malformed), then ``--memory_requests`` more, and reads the resident
memory of the server's process tree (``VmRSS`` of ``/proc/PID/status``, summed) along the way.

Clients: one asyncio task per client, each with its own keep-alive connection, in this process
(standard library only). Each server gets ``--repeats`` runs per client count, the client counts
alternating, and the table shows the best run (the least disturbed one on a shared machine) and the
throughput of each. Each run stops after its request count or ``--seconds``, whichever comes first;
a request without an answer after ``--timeout`` seconds counts as a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.common import machine, table

BATCHING = ("--max_batch_size", "32", "--batch_timeout", "0.005")
SERVERS = ("minimal ASGI endpoint", "zoo serve", "zoo serve, 2 workers", "zoo serve, batching")
BOUNDARY = "zoo-benchmark-7d1f0c"
REQUEST_LIMIT = 10 * 1024 * 1024  # zoo serve's default --max_request_mb, in bytes
MALFORMED_EVERY = 10  # one request in ten is malformed in the malformed and memory runs


# ----- the model, in this process and in the minimal endpoint -------------------------------------


class Classifier:
    """The shipped weights with the image reading ``zoo serve`` uses, and no server: the reference
    answers, and the minimal endpoint's model."""

    def __init__(self, weights: str) -> None:
        import zoo
        from zoo.infer import image_size_of, input_preprocessing

        self.model = zoo.load_pretrained(weights).eval()
        self.size, self.framing = image_size_of(self.model), input_preprocessing(self.model)
        self.names = list(self.model.class_names)

    def __call__(self, pngs: list[bytes]) -> list[str]:
        from zoo.data.folder import read_image

        x = torch.stack([read_image(io.BytesIO(png), *self.size, self.framing) for png in pngs])
        with torch.inference_mode():
            logits = self.model(x.float().div_(255))
        return [self.names[i] for i in logits.argmax(dim=1).tolist()]


def first_upload(body: bytes, content_type: str, field_name: bytes = b"image") -> bytes | None:
    """The content of the first multipart part named ``field_name``, cut out by hand (no parser)."""
    _, _, boundary = content_type.partition("boundary=")
    if not boundary:
        return None
    for part in body.split(b"--" + boundary.strip('"').encode()):
        head, found, content = part.partition(b"\r\n\r\n")
        if found and b'name="' + field_name + b'"' in head:
            return content[:-2] if content.endswith(b"\r\n") else content
    return None


def minimal_app(classifier: Classifier):
    """The smallest ASGI app that serves ``classifier``: GET /health, POST /predict -> {"class": ...}."""
    from zoo.data.folder import ImageFolderError

    async def answer(send, status: int, payload: bytes, content_type: bytes = b"application/json") -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})

    async def app(scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/health":
            await answer(send, 200, b"ok", b"text/plain")
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        headers = dict(scope["headers"])
        image = first_upload(body, headers.get(b"content-type", b"").decode("latin-1"))
        if image is None:
            await answer(send, 400, b'{"detail": "send a multipart image field"}')
            return
        try:
            name = classifier([image])[0]
        except ImageFolderError as err:
            await answer(send, 422, json.dumps({"detail": str(err)}).encode())
            return
        await answer(send, 200, json.dumps({"class": name}).encode())

    return app


def serve_minimal(weights: str, port: int) -> None:
    import uvicorn

    uvicorn.run(minimal_app(Classifier(weights)), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="off")


# ----- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One HTTP request as bytes; ``image``: the index of its test image if it is a good one."""

    kind: str
    data: bytes
    image: int | None = None
    close: bool = False  # the body was not sent whole: the connection cannot be used again


def http_post(content_type: str, body: bytes, declared_length: int | None = None) -> bytes:
    length = len(body) if declared_length is None else declared_length
    return (f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode() + body


def multipart(*fields: tuple[str, str | None, bytes]) -> tuple[str, bytes]:
    """(content type, body) of a multipart form of ``(name, file name or None, content)`` fields."""
    parts = []
    for name, filename, content in fields:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        kind = "Content-Type: image/png\r\n" if filename else ""
        parts.append(f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{kind}\r\n".encode() + content + b"\r\n")
    return f"multipart/form-data; boundary={BOUNDARY}", b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def good_request(pngs: list[bytes], i: int) -> Request:
    image = i % len(pngs)
    return Request("good", http_post(*multipart(("image", f"{image}.png", pngs[image]))), image)


def malformed_requests(png: bytes) -> list[Request]:
    """One request of each malformed kind; the status each must get is a 4xx."""
    garbage = random.Random(0).randbytes(2048)
    form = f"multipart/form-data; boundary={BOUNDARY}"
    return [
        Request("empty body", http_post(form, b"")),
        Request("not an image", http_post(*multipart(("image", "digit.png", b"this is not an image\n" * 40)))),
        Request("multipart that does not parse", http_post(form, garbage)),
        Request("wrong field", http_post(*multipart(("file", "digit.png", png)))),
        Request("invalid JSON", http_post("application/json", b'{"image": "iVBORw0KGgo')),
        Request("bad base64", http_post("application/json", b'{"image": "not base64 at all!"}')),
        Request("wrong content type", http_post("text/plain", png)),
        # 11 MiB declared, 64 KiB sent: the server must refuse it from the header.
        Request("body over 10 MB (declared)", http_post(form, garbage * 32, REQUEST_LIMIT + 2**20), close=True),
        Request("bad top_k", http_post(*multipart(("image", "digit.png", png), ("top_k", None, b"0")))),
    ]


def traffic(pngs: list[bytes], count: int, malformed: bool) -> list[Request]:
    """``count`` requests cycling through the test images; with ``malformed``, every tenth request is
    broken, cycling through the malformed kinds."""
    broken = malformed_requests(pngs[0]) if malformed else []
    return [broken[(i // MALFORMED_EVERY) % len(broken)] if malformed and i % MALFORMED_EVERY == MALFORMED_EVERY - 1
            else good_request(pngs, i) for i in range(count)]


# ----- the clients ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    request: Request
    status: int | str  # the HTTP status, or "timeout" / "no answer: ..." when none came
    body: bytes
    seconds: float


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection stays open) of one HTTP/1.1 response."""
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {key.strip().lower(): value.strip().lower()
               for key, _, value in (line.partition(":") for line in head[1:] if line)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:  # the body runs to the end of the connection
        return status, await reader.read(), False
    return status, body, headers.get("connection") != "close"


async def load(port: int, requests: list[Request], clients: int, seconds: float, timeout: float
               ) -> tuple[list[Outcome], float]:
    """Send ``requests`` with ``clients`` concurrent keep-alive connections; returns the outcomes of
    those sent (all, unless ``seconds`` ran out first) and the wall time."""
    outcomes: list[Outcome] = []
    next_index = iter(range(len(requests)))
    start = time.perf_counter()
    deadline = start + seconds

    async def exchange(connection, request: Request) -> tuple[int, bytes, bool]:
        reader, writer = connection
        writer.write(request.data)
        try:
            await writer.drain()
        except ConnectionError:  # the server answered and closed before taking the whole body
            pass
        return await read_response(reader)

    async def client() -> None:
        connection = None
        for i in next_index:
            if time.perf_counter() > deadline:
                break
            request, sent = requests[i], time.perf_counter()
            keep = False
            try:
                if connection is None:
                    connection = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
                status, body, keep = await asyncio.wait_for(exchange(connection, request), timeout)
            except asyncio.TimeoutError:
                status, body = "timeout", b""
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as err:
                status, body = f"no answer: {type(err).__name__}", b""
            outcomes.append(Outcome(request, status, body, time.perf_counter() - sent))
            if connection is not None and (request.close or not keep):
                connection[1].close()
                connection = None
        if connection is not None:
            connection[1].close()

    await asyncio.gather(*(client() for _ in range(clients)))
    return outcomes, time.perf_counter() - start


def answered_class(body: bytes) -> str | None:
    """The top class in a zoo serve answer or a minimal endpoint answer."""
    try:
        answer = json.loads(body)
        return answer["predictions"][0]["class"] if "predictions" in answer else answer["class"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class Run:
    """What one run of requests gave, checked against the reference classes ``expected``: ``good``
    and ``bad`` (malformed) outcomes, and ``wrong``, the good ones not answered 200 with the right class."""

    def __init__(self, outcomes: list[Outcome], seconds: float, expected: list[str]) -> None:
        self.outcomes, self.seconds = outcomes, seconds
        self.good = [o for o in outcomes if o.request.image is not None]
        self.bad = [o for o in outcomes if o.request.image is None]
        self.wrong = [o for o in self.good if o.status != 200 or answered_class(o.body) != expected[o.request.image]]

    def throughput(self) -> float:
        return sum(o.status == 200 for o in self.good) / self.seconds

    def latency_ms(self, q: float) -> float:
        return 1000 * percentile([o.seconds for o in self.good], q)

    def statuses(self, outcomes: list[Outcome]) -> str:
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[str(o.status)] = counts.get(str(o.status), 0) + 1
        return ", ".join(f"{status}: {n:,}" for status, n in sorted(counts.items()))


# ----- the servers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stats() -> dict[int, list[str]]:
    """The fields of ``/proc/PID/stat`` after the command name, for every process."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stats[int(entry)] = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                pass
    return stats


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from the parents in ``/proc``."""
    children: dict[int, list[int]] = {}
    for pid, fields in proc_stats().items():
        children.setdefault(int(fields[1]), []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_bytes(root: int) -> int:
    """Resident memory of ``root``'s process tree, summed (shared pages count once per process)."""
    total = 0
    for pid in process_tree(root):
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:
            continue
        total += sum(int(line.split()[1]) * 1024 for line in lines if line.startswith("VmRSS:"))
    return total


def cpu_seconds(root: int) -> float:
    stats = proc_stats()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(stats[pid][11]) + int(stats[pid][12]) for pid in process_tree(root) if pid in stats) / ticks


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on ``port`` (``/proc/net/tcp`` and ``tcp6``)."""
    addresses = set()
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                raw = b"".join(bytes.fromhex(address[i : i + 8])[::-1] for i in range(0, len(address), 8))
                addresses.add(socket.inet_ntop(family, raw))
    return addresses


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log: object  # the temporary file holding its output


def log_tail(server: Server, chars: int = 3000) -> str:
    server.log.seek(0)
    return server.log.read().decode(errors="replace")[-chars:]


@contextmanager
def running(name: str, command: list[str], port: int, start_timeout: float, notes: list[str]):
    """Start ``command`` in its own process group, wait for ``GET /health``, and stop the whole group
    when done (also on errors and Ctrl-C)."""
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    server = Server(name, port, process, log)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with status {process.returncode} before answering:\n{log_tail(server)}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not answer GET /health within {start_timeout:.0f} s:\n{log_tail(server)}")
            time.sleep(0.25)
        yield server
    finally:
        stop(server, notes)
        log.close()


def group_members(pgid: int) -> list[int]:
    return [pid for pid, fields in proc_stats().items() if int(fields[2]) == pgid and fields[0] != "Z"]


def stop(server: Server, notes: list[str], grace: float = 20) -> None:
    """SIGINT to the server's process group, as Ctrl-C in its terminal; what is still running after
    ``grace`` seconds is killed, and said in ``notes``."""
    pgid = server.process.pid
    try:
        os.killpg(pgid, signal.SIGINT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and (server.process.poll() is None or group_members(pgid)):
        time.sleep(0.1)
    left = group_members(pgid)
    if left:
        notes.append(f"{server.name}: {len(left)} of its processes still ran {grace:.0f} s after SIGINT; killed")
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.process.wait()


# ----- the runs ------------------------------------------------------------------------------------


def split_pngs(weights: str, data_dir: Path, count: int) -> tuple[list[bytes], list[int]]:
    """The first ``count`` test images of the weights' dataset as PNG files, and their labels."""
    from torchvision.datasets import MNIST, FashionMNIST

    from zoo.weights import read_manifest

    datasets = {"mnist": MNIST, "fashion_mnist": FashionMNIST}
    dataset = read_manifest().get(weights, {}).get("dataset")
    if dataset not in datasets:
        raise SystemExit(f"{weights}: this benchmark serves shipped MNIST and Fashion-MNIST classifiers")
    try:
        split = datasets[dataset](str(data_dir), train=False, download=False)
    except RuntimeError as err:
        raise SystemExit(f"{err} (set ZOO_DATA_DIR or pass --data_dir: the folder holding MNIST/raw/)") from None
    pngs, labels = [], []
    for i in range(min(count, len(split))):
        image, label = split[i]
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
        labels.append(int(label))
    return pngs, labels


def measure(server: Server, what: str, requests: list[Request], clients: int, expected: list[str], seconds: float,
            timeout: float) -> Run:
    """Run ``requests`` against ``server`` and check the answers; says on stderr how it went."""
    outcomes, seconds = asyncio.run(load(server.port, requests, clients, seconds, timeout))
    run = Run(outcomes, seconds, expected)
    cut = "" if len(outcomes) == len(requests) else f", stopped after {len(outcomes):,} of {len(requests):,} at --seconds"
    print(f"  {server.name}, {what}, {clients} client{'s' * (clients != 1)}: {len(outcomes):,} requests in "
          f"{seconds:.1f} s{cut}", file=sys.stderr)
    return run


def best_run(runs: list[Run]) -> Run:
    """The run of highest throughput: the least disturbed one on a shared machine (timeit's advice)."""
    return max(runs, key=Run.throughput)


def check(run: Run, what: str, checks: list[str]) -> bool:
    """Whether every good request of ``run`` was answered right and every malformed one 4xx; what was
    not goes into ``checks``, with examples."""
    failed = [o for o in run.bad if not (isinstance(o.status, int) and 400 <= o.status < 500)]
    if run.wrong:
        checks.append(f"{what}: {len(run.wrong):,} of {len(run.good):,} good requests not answered right, "
                      f"e.g. {examples(run.wrong)}")
    if failed:
        checks.append(f"{what}: {len(failed):,} of {len(run.bad):,} malformed requests not answered 4xx, "
                      f"e.g. {examples(failed)}")
    return not run.wrong and not failed


def examples(outcomes: list[Outcome], most: int = 4) -> str:
    """The ``most`` frequent distinct answers among ``outcomes``, with their counts."""
    counts: dict[str, int] = {}
    for o in outcomes:
        answer = f"{o.request.kind} request -> {o.status} {o.body[:200].decode(errors='replace')}".strip()
        counts[answer] = counts.get(answer, 0) + 1
    return "; ".join(f"{n:,}× {answer}" for answer, n in sorted(counts.items(), key=lambda item: -item[1])[:most])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("ZOO_DATA_DIR"), help="data root (default: $ZOO_DATA_DIR)")
    parser.add_argument("--weights", nargs="+", default=["lenet5_mnist", "alexnet_fashionmnist"])
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32], help="concurrent clients per run")
    parser.add_argument("--requests", type=int, default=1000, help="requests per run (server and client count)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each server and client count, client counts alternating; the table shows the best")
    parser.add_argument("--warmup", type=int, default=300, help="requests to each server before its runs, not counted")
    parser.add_argument("--malformed_requests", type=int, default=2000,
                        help="requests of the malformed run of each zoo serve (a tenth malformed), at the most clients")
    parser.add_argument("--memory_requests", type=int, default=20000, help="requests of the memory run, after 500 of warm-up")
    parser.add_argument("--memory_clients", type=int, default=8)
    parser.add_argument("--images", type=int, default=1000, help="distinct test images the requests cycle through")
    parser.add_argument("--seconds", type=float, default=120, help="longest time one run may take (the memory run: 5x)")
    parser.add_argument("--timeout", type=float, default=60, help="seconds a request may wait for its answer")
    parser.add_argument("--start_timeout", type=float, default=180, help="seconds a server may take to start")
    parser.add_argument("--quick", action="store_true",
                        help="a short run (1-2 minutes): 300 requests per run, 1,000 malformed-run and 3,000 memory-run requests")
    parser.add_argument("--endpoint", metavar="WEIGHTS",
                        help="serve WEIGHTS on --port with the minimal endpoint only (the benchmark starts it so)")
    parser.add_argument("--port", type=int, default=8000, help="the port of --endpoint")
    args = parser.parse_args()
    if args.endpoint:
        serve_minimal(args.endpoint, args.port)
        return
    if args.quick:
        args.requests, args.repeats, args.warmup, args.malformed_requests, args.memory_requests = 300, 1, 100, 1000, 3000
    if not args.data_dir:
        raise SystemExit("set ZOO_DATA_DIR or pass --data_dir: the folder holding MNIST/raw/ and FashionMNIST/raw/")
    # Ctrl-C stops the run even when it was started with SIGINT ignored (a background job), and so the
    # servers it starts, which inherit the disposition, can be stopped by SIGINT; SIGTERM unwinds too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    notes: list[str] = []
    load_rows, rest_rows, ratio_rows, malformed_rows, checks = [], [], [], [], []
    kinds: dict[str, dict[str, int]] = {}
    top = max(args.clients)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    for weights in args.weights:
        pngs, labels = split_pngs(weights, Path(args.data_dir), args.images)
        reference = Classifier(weights)
        expected = reference(pngs)
        agree = sum(reference.names.index(c) == y for c, y in zip(expected, labels)) / len(labels)
        print(f"{weights}: {len(pngs):,} test images, {agree:.2%} of them classified right in this process", file=sys.stderr)
        commands = {
            SERVERS[0]: [sys.executable, "-m", "benchmarks.serve", "--endpoint", weights],
            SERVERS[1]: [sys.executable, "-m", "zoo.cli", "serve", weights, "--host", "127.0.0.1"],
            SERVERS[2]: [sys.executable, "-m", "zoo.cli", "serve", weights, "--host", "127.0.0.1", "--workers", "2"],
            SERVERS[3]: [sys.executable, "-m", "zoo.cli", "serve", weights, "--host", "127.0.0.1", *BATCHING],
        }
        runs: dict[str, dict[int, Run]] = {}
        for name, command in commands.items():
            port = free_port()
            with running(name, [*command, "--port", str(port)], port, args.start_timeout, notes) as server:
                listening = listening_addresses(port)
                if listening != {"127.0.0.1"}:
                    notes.append(f"{weights}, {name}: listens on {', '.join(sorted(listening))}, not 127.0.0.1 only")
                idle = cpu_seconds(server.process.pid)
                time.sleep(3)
                idle = (cpu_seconds(server.process.pid) - idle) / 3
                rest_rows.append([f"`{weights}`", name, len(process_tree(server.process.pid)),
                                  f"{rss_bytes(server.process.pid) / 2**20:,.0f}", f"{idle:.1%}"])
                measure(server, "warm-up", traffic(pngs, args.warmup, False), top, expected, args.seconds, args.timeout)
                repeated: dict[int, list[Run]] = {c: [] for c in args.clients}
                for _ in range(args.repeats):  # client counts alternate, so that drift hits them alike
                    for clients in args.clients:
                        repeated[clients].append(measure(server, "load", traffic(pngs, args.requests, False), clients,
                                                         expected, args.seconds, args.timeout))
                runs[name] = {clients: best_run(each) for clients, each in repeated.items()}
                for clients, each in repeated.items():
                    run, good = runs[name][clients], sum(len(r.good) for r in each)
                    right = good - sum(len(r.wrong) for r in each)
                    load_rows.append([f"`{weights}`", name, clients, f"{run.throughput():,.0f}",
                                      " ".join(f"{r.throughput():,.0f}" for r in each), f"{run.latency_ms(0.5):.1f}",
                                      f"{run.latency_ms(0.99):.1f}", f"{right:,} / {good:,}"])
                    for r in each:
                        check(r, f"{weights}, {name}, {clients} clients", checks)
                if name == SERVERS[0]:
                    continue
                run = measure(server, "malformed", traffic(pngs, args.malformed_requests, True), top, expected,
                              args.seconds, args.timeout)
                for o in run.bad:
                    kinds.setdefault(o.request.kind, {}).setdefault(str(o.status), 0)
                    kinds[o.request.kind][str(o.status)] += 1
                met = check(run, f"{weights}, {name}, malformed run", checks)
                malformed_rows.append([f"`{weights}`", name, f"{len(run.outcomes):,}",
                                       f"{len(run.good) - len(run.wrong):,} / {len(run.good):,}", run.statuses(run.good),
                                       run.statuses(run.bad), "met" if met else "**missed**"])
        minimal = runs[SERVERS[0]][top]
        for name in SERVERS[1:]:
            run = runs[name][top]
            speed, p99 = run.throughput() / minimal.throughput(), run.latency_ms(0.99) / minimal.latency_ms(0.99)
            ratio_rows.append([f"`{weights}`", name, f"{speed:.2f}× ({'met' if speed >= 0.7 else '**missed**'})",
                               f"{p99:.2f}× ({'met' if p99 <= 2 else '**missed**'})"])

    memory_rows, growth = memory_run(args, notes, checks)
    print(f"zoo serve on 127.0.0.1, one server at a time; {machine()}; {time.perf_counter() - started:.0f} s in all; "
          f"1-minute load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(f"Each request: multipart POST /predict of one test image (PNG); {args.repeats} runs of {args.requests:,} "
          f"requests per server and client count after {args.warmup:,} of warm-up, the best run shown; batching: "
          f"{' '.join(BATCHING)}; img/s counts answers that were right\n")
    print(table(["weights", "server", "clients", "img/s (best)", "runs img/s", "p50 ms", "p99 ms", "right answers"], load_rows))
    print(f"\nzoo serve / minimal endpoint at {top} clients (goals: throughput ≥ 0.7×, p99 ≤ 2×)")
    print(table(["weights", "server", "throughput", "p99"], ratio_rows))
    print("\nServers at rest, after starting (RSS summed over the process tree; CPU over 3 s)")
    print(table(["weights", "server", "processes", "RSS MiB", "idle CPU (one core)"], rest_rows))
    print(f"\nMalformed traffic: one request in {MALFORMED_EVERY} broken, {top} clients "
          "(goal: every malformed one 4xx, every good one right, no 5xx, no request unanswered)")
    print(table(["weights", "server", "requests", "good right", "good: statuses", "malformed: statuses", "goal"],
                malformed_rows))
    print("\nStatuses per malformed kind, all malformed runs together")
    print(table(["malformed request", "statuses"], [[kind, ", ".join(f"{s}: {n:,}" for s, n in sorted(seen.items()))]
                                                     for kind, seen in kinds.items()]))
    print(f"\nMemory of `{args.weights[0]}` behind zoo serve, {args.memory_clients} clients, one request in "
          f"{MALFORMED_EVERY} malformed (goal: growth < 10 %)")
    print(table(["after requests", "RSS MiB", "growth"], memory_rows))
    print(f"growth: {growth:+.1%} ({'met' if growth < 0.10 else '**missed**'})")
    for line in checks + notes:
        print(f"- {line}")
    if not checks:
        print("- every good request of the load runs was answered 200 with the class the model gives in-process")


def memory_run(args, notes: list[str], checks: list[str]) -> tuple[list[list[str]], float]:
    """A fresh zoo serve of the first weights: RSS after 500 requests, then along ``--memory_requests``
    more, in four steps; returns the table rows and the growth from the first reading to the last."""
    weights = args.weights[0]
    pngs, _ = split_pngs(weights, Path(args.data_dir), args.images)
    expected = Classifier(weights)(pngs)
    port = free_port()
    command = [sys.executable, "-m", "zoo.cli", "serve", weights, "--host", "127.0.0.1", "--port", str(port)]
    rows, readings, sent = [], [], 0
    steps = [500] + [args.memory_requests // 4] * 3 + [args.memory_requests - 3 * (args.memory_requests // 4)]
    with running("zoo serve (memory run)", command, port, args.start_timeout, notes) as server:
        for count in steps:
            run = measure(server, "memory", traffic(pngs, count, True), args.memory_clients, expected, 5 * args.seconds,
                          args.timeout)
            sent += len(run.outcomes)
            check(run, f"memory run, requests {sent - len(run.outcomes) + 1:,} to {sent:,}", checks)
            readings.append(rss_bytes(server.process.pid))
            rows.append([f"{sent:,}" + (" (warm-up)" if not rows else ""), f"{readings[-1] / 2**20:,.1f}",
                         f"{readings[-1] / readings[0] - 1:+.1%}" if rows else ""])
            if len(run.outcomes) < count:
                notes.append(f"memory run stopped at --seconds ({5 * args.seconds:.0f} s) after {sent:,} requests")
                break
    return rows, readings[-1] / readings[0] - 1


if __name__ == "__main__":
    main()
