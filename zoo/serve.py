"""``zoo serve WEIGHTS``: a model behind HTTP, on LitServe (``pip install "lightning-zoo[serve]"``).

The server asks the model what it does (see :class:`zoo.models.base.ZooModule`) and answers ``POST
/predict`` accordingly:

- a classifier (``gives == "classes"``) takes images and answers the top ``top_k`` classes of each,
  read and ranked by the code ``zoo infer`` uses (:func:`zoo.data.folder.read_image`, which frames
  photos and scans as the weights' input contract says, and :func:`zoo.infer.top_classes`);
- an autoencoder (``takes == gives == "images"``) takes images and answers their reconstructions;
- a VAE or GAN (``can_sample``) takes ``{"n": 8, "seed": 0, "labels": ...}`` and answers new images.

Images come as a multipart upload (``curl -F image=@digit.png``, one ``image`` field per image) or as
JSON (``{"image": BASE64}`` or ``{"images": [BASE64, ...]}``); images go back as base64 PNGs. LitServe
adds ``GET /health``, ``GET /info`` (what :func:`load_served` says of the weights) and the OpenAPI
page ``/docs``.

Safe by default: the server listens on 127.0.0.1; with ``LIT_SERVER_API_KEY`` set in its environment
(LitServe's variable: never on the command line, where other users of the machine could read it),
every endpoint answers only requests whose ``X-API-Key`` header holds it. A request body is read up
to ``--max_request_mb`` and checked before it reaches LitServe (:class:`RequestCheck`); images past
Pillow's pixel limit (``PIL.Image.MAX_IMAGE_PIXELS``) are refused before they are decoded, and
nothing in a request is unpickled. Every bad request gets a 4xx answer with a JSON ``detail``.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import os
from pathlib import Path
from typing import Any

import litserve as ls
import torch
from fastapi import HTTPException
from starlette.responses import JSONResponse

from zoo.errors import UsageError

MAX_SAMPLES = 256  # images one sampling request may ask for
MAX_IMAGES = 256  # images one request may send


class ServeError(UsageError):
    """The server cannot start as asked; the message says what to change."""


def served_kind(model) -> str:
    """What ``POST /predict`` does with ``model``, asked of the model: ``"sample"`` (a VAE, a GAN),
    ``"classify"`` (an image classifier) or ``"reconstruct"`` (an autoencoder)."""
    if model.can_sample:
        return "sample"
    if model.takes == "images" and model.gives == "classes":
        return "classify"
    if model.takes == model.gives == "images" and model.condition_classes is None:
        return "reconstruct"
    raise ServeError(f"zoo serve serves image classifiers, autoencoders, VAEs and GANs: {type(model).__name__} "
                     f"takes {model.takes} and gives {model.gives}. Call it from Python instead.")


def load_served(weights: str | Path):
    """(model in eval mode, what ``GET /info`` says about it) for shipped weights, a ``save_pretrained``
    folder or a ``zoo fit`` checkpoint (``.ckpt``, read without unpickling objects)."""
    import zoo
    from zoo.checkpointing import model_from_checkpoint
    from zoo.weights import load_pretrained, read_manifest, sha256_of

    path = Path(weights)
    if path.suffix == ".ckpt":
        model, sha256 = model_from_checkpoint(path), sha256_of(path)
    else:
        model = load_pretrained(weights)
        entry = None if path.exists() else read_manifest().get(str(weights))
        sha256 = entry["sha256"] if entry else sha256_of(path / "model.safetensors")
    model.eval()
    kind = served_kind(model)
    info = {
        "weights": str(weights) if not path.exists() else path.name,
        "sha256": sha256,
        "model": type(model).__name__,
        "predict": kind,
        "takes": model.takes,
        "gives": model.gives,
        "class_names": model.class_names,
        "input": model.describe_input("N", tuple(model.input_shape), "images") if kind != "sample" else None,
        "input_framing": model.hparams.get("input_framing"),
        "zoo_version": zoo.__version__,
    }
    return model, info


# ----- requests ------------------------------------------------------------------------------------


def bad_request(status: int, detail: str):
    """The exception that answers a request with ``status`` and ``{"detail": detail}``."""
    return HTTPException(status_code=status, detail=detail)


def _int_field(request, name: str, default: int, low: int, high: int) -> int:
    value = request.get(name, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():  # a form field is text
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad_request(422, f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _check_fields(request, allowed: tuple[str, ...], how: str) -> None:
    unknown = sorted(set(request.keys()) - set(allowed))
    if unknown:
        raise bad_request(422, f"unknown field {', '.join(map(repr, unknown))}: this model takes {how}")


def image_payloads(request, options: tuple[str, ...] = ()) -> list[tuple[str, bytes]]:
    """The ``(name, bytes)`` of each image of a request: multipart ``image`` fields, or JSON ``image``
    (one base64 string) or ``images`` (a list of them); ``options``: the other fields it may have."""
    how = "images as multipart 'image' fields, or JSON {\"image\": BASE64} or {\"images\": [BASE64, ...]}"
    _check_fields(request, ("image", "images", *options), how + "".join(f", and {name}" for name in options))
    if isinstance(request, dict):  # JSON
        if "image" in request and "images" in request:
            raise bad_request(422, "send either 'image' or 'images', not both")
        encoded = [request["image"]] if "image" in request else request.get("images")
        if not isinstance(encoded, list) or not encoded:
            raise bad_request(422, f"no images: send {how}")
        payloads = []
        for i, text in enumerate(encoded, 1):
            if not isinstance(text, str):
                raise bad_request(422, f"image {i} is not a base64 string (got {type(text).__name__} {text!r:.40})")
            try:
                payloads.append((f"image {i}", base64.b64decode(text, validate=True)))
            except (binascii.Error, ValueError) as err:
                raise bad_request(422, f"image {i} is not valid base64 ({err})") from None
    else:  # multipart form
        uploads = request.getlist("image") + request.getlist("images")
        if not uploads:
            raise bad_request(422, f"no images: send {how}")
        payloads = []
        for i, upload in enumerate(uploads, 1):
            if isinstance(upload, str):
                raise bad_request(422, f"image field {i} is text, not a file: upload it with -F image=@FILE")
            payloads.append((upload.filename or f"image {i}", upload.file.read()))
    if len(payloads) > MAX_IMAGES:
        raise bad_request(413, f"{len(payloads)} images in one request; send at most {MAX_IMAGES}")
    empty = next((name for name, data in payloads if not data), None)
    if empty is not None:
        raise bad_request(422, f"{empty} is empty")
    return payloads


# ----- the LitServe API ----------------------------------------------------------------------------


class ZooAPI(ls.LitAPI):
    """Serves one zoo model on ``POST /predict``: what it does is asked of the model (:func:`served_kind`).

    Requests are decoded and checked one by one (a bad one gets its own 4xx, also inside a batch); with dynamic
    batching, the images of the requests LitServe gathers go through the model in one forward
    pass, and each request gets its own rows back.
    """

    def __init__(self, weights: str, top_k: int = 5, preprocess: str = "auto", max_batch_size: int = 1,
                 batch_timeout: float = 0.0, cpu_threads: int | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, batch_timeout=batch_timeout)
        self.weights, self.top_k, self.preprocess = str(weights), top_k, preprocess
        self.cpu_threads = cpu_threads

    def setup(self, device) -> None:
        import signal

        from zoo.infer import image_size_of, input_preprocessing

        # This runs in LitServe's model process. Ctrl-C reaches every process of the terminal; this one
        # leaves it to the command, which stops the server and then ends this process (SIGTERM), so
        # that a request being answered at that moment is not cut off with a traceback.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

        model, _ = load_served(self.weights)
        self.model, self.kind, self.device = model.to(device), served_kind(model), device
        if self.cpu_threads and torch.device(device).type == "cpu":
            torch.set_num_threads(self.cpu_threads)
        if self.kind != "sample":
            self.size = image_size_of(model)
            self.framing = input_preprocessing(model, self.preprocess)

    def decode_request(self, request) -> dict[str, Any]:
        # A bad request is answered on its own: with dynamic batching, an exception raised here would
        # answer every request of its batch (LitServe decodes a batch in one try), so it is kept as the
        # request's answer instead, which predict passes by and encode_response sends.
        try:
            return self._sample_request(request) if self.kind == "sample" else self._image_request(request)
        except HTTPException as err:
            return {"refused": (err.status_code, err.detail)}

    def _image_request(self, request) -> dict[str, Any]:
        from zoo.data.folder import ImageFolderError, read_image

        options = ("top_k",) if self.kind == "classify" else ()
        payloads = image_payloads(request, options)
        top_k = _int_field(request, "top_k", self.top_k, 1, 1000) if options else None
        images = []
        for name, data in payloads:
            try:
                images.append(read_image(io.BytesIO(data), *self.size, self.framing, name=name))
            except ImageFolderError as err:
                raise bad_request(422, str(err)) from None
        return {"names": [name for name, _ in payloads], "x": torch.stack(images), "top_k": top_k}

    def _sample_request(self, request) -> dict[str, Any]:
        if not isinstance(request, dict):
            raise bad_request(415, "this model draws images: send JSON such as {\"n\": 8, \"seed\": 0}")
        _check_fields(request, ("n", "seed", "labels"), "n, seed and labels")
        n = _int_field(request, "n", 1, 1, MAX_SAMPLES)
        seed = _int_field(request, "seed", 0, 0, 2**63 - 1)
        labels = request.get("labels")
        if labels is not None:
            from zoo.models.labels import class_labels

            try:  # the model's own check of the classes asked for, before the request is batched
                class_labels(labels, n, self.model.condition_classes, self.model.class_names,
                             type(self.model).__name__)
            except (TypeError, ValueError) as err:
                raise bad_request(422, f"labels: {err}") from None
        return {"n": n, "seed": seed, "labels": labels}

    def predict(self, requests):
        single = isinstance(requests, dict)  # one request, or with batching the list of those LitServe gathered
        requests = [requests] if single else requests
        valid = [r for r in requests if "refused" not in r]
        with torch.inference_mode():
            if self.kind == "sample":
                results = [self.model.sample(r["n"], labels=r["labels"],
                                             generator=torch.Generator().manual_seed(r["seed"])).cpu()
                           for r in valid]
            elif valid:
                x = torch.cat([r["x"] for r in valid]).to(self.device).float().div_(255)
                results = self.model(x).float().cpu().split([len(r["x"]) for r in valid])
        outputs = iter(results if valid else [])
        answers = [(r, None if "refused" in r else next(outputs)) for r in requests]  # each with its own rows
        return answers[0] if single else answers

    def encode_response(self, answer):  # unannotated: LitServe would make the annotation FastAPI's response model
        """The JSON of one request's answer, or the 4xx its decoding kept (a ``JSONResponse``)."""
        from zoo.infer import png_bytes, top_classes

        request, result = answer
        if "refused" in request:
            status, detail = request["refused"]
            return JSONResponse({"detail": detail}, status_code=status)
        if self.kind == "classify":
            rows = top_classes(self.model, result, request["names"], request["top_k"])
            return {"predictions": [{"image": row["path"], "class": row["class"], "probability": row["probability"],
                                     "top_k": [{"class": c, "probability": p} for c, p in row["top_k"]]}
                                    for row in rows]}
        pngs = [base64.b64encode(png_bytes(image)).decode("ascii") for image in result]
        if self.kind == "reconstruct":
            return {"reconstructions": [{"image": name, "png": png} for name, png in zip(request["names"], pngs)]}
        return {"images": pngs, "n": request["n"], "seed": request["seed"], "labels": request["labels"]}


# ----- checks before LitServe ----------------------------------------------------------------------


class RequestCheck:
    """ASGI middleware: a ``POST`` to ``path`` is read whole, up to ``max_bytes``, and answered 4xx here
    if it is too large, empty, of another content type, or JSON or multipart that does not parse;
    otherwise it goes on to LitServe unchanged. (LitServe parses bodies itself and would answer such
    requests 500.)"""

    def __init__(self, app, max_bytes: int, path: str = "/predict") -> None:
        self.app, self.max_bytes, self.path = app, max_bytes, path

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._answer(send, 413, self._too_large(int(length)))
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._answer(send, 413, self._too_large(len(body)))
                return
            if not message.get("more_body", False):
                break
        body = bytes(body)
        replayed = False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        problem = await self._problem(scope, body, headers.get("content-type", ""))
        if problem is not None:
            await self._answer(send, *problem)
            return
        await self.app(scope, replay, send)

    def _too_large(self, size: int) -> str:
        return f"the request has {size:,} bytes, more than this server's limit of {self.max_bytes:,} (--max_request_mb)"

    async def _problem(self, scope, body: bytes, content_type: str) -> tuple[int, str] | None:
        kind = content_type.split(";", 1)[0].strip().lower()
        if not body:
            return 400, ("empty request: send images as multipart 'image' fields (curl -F image=@digit.png) or "
                         "JSON; a VAE or GAN takes JSON such as {\"n\": 8}")
        if kind == "application/json":
            try:
                value = json.loads(body)
            except (UnicodeDecodeError, ValueError) as err:
                return 400, f"the body is not valid JSON: {err}"
            return None if isinstance(value, dict) else (422, f"the JSON body must be an object, got {type(value).__name__}")
        if kind == "multipart/form-data":
            from starlette.exceptions import HTTPException as StarletteHTTPException
            from starlette.formparsers import MultiPartException
            from starlette.requests import Request

            async def once():
                return {"type": "http.request", "body": body, "more_body": False}

            try:
                form = await Request(scope, once).form(max_files=MAX_IMAGES, max_fields=MAX_IMAGES + 8)
                await form.close()
            except StarletteHTTPException as err:  # how Starlette reports a body that does not parse
                return 400, f"the multipart body does not parse: {err.detail}"
            except (MultiPartException, AssertionError, ValueError) as err:
                return 400, f"the multipart body does not parse: {err}"
            return None
        return 415, (f"content type {content_type or 'none'!r}: send multipart/form-data (curl -F image=@digit.png) "
                     "or application/json")

    @staticmethod
    async def _answer(send, status: int, detail: str) -> None:
        payload = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


# ----- the server ----------------------------------------------------------------------------------


def cpu_threads_per_worker(workers: int) -> int:
    """Torch threads for each model process on a CPU: the cores this process may use, less one for the
    HTTP process, shared among the ``workers``. Torch would otherwise give every model process all the
    cores, and its threads would wait on each other and on the HTTP process (on two cores that took a
    third of the small AlexNet's batched throughput; see benchmarks/README.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity masks (macOS, Windows)
        cores = os.cpu_count() or 1
    return max(1, (cores - 1) // workers)


def build_server(weights: str, *, top_k: int = 5, preprocess: str = "auto", max_batch_size: int = 1,
                 batch_timeout: float = 0.0, workers: int = 1, accelerator: str = "auto", timeout: float = 30,
                 max_request_mb: float = 10):
    """A LitServe server of ``weights`` (see the module docstring), not yet running: ``.run(host, port)``."""
    _, info = load_served(weights)  # refuses weights it cannot serve before any worker starts
    api = ZooAPI(weights, top_k=top_k, preprocess=preprocess, max_batch_size=max_batch_size,
                 batch_timeout=batch_timeout, cpu_threads=cpu_threads_per_worker(workers))
    return ls.LitServer(api, accelerator=accelerator, workers_per_device=workers, timeout=timeout,
                        model_metadata=info,
                        middlewares=[(RequestCheck, {"max_bytes": int(max_request_mb * 1024 * 1024)})])
