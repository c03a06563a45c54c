"""Model workers in processes of their own, as a SageMaker container's workers are.

``ProcessModelHost`` serves an endpoint's invocations from child processes, one per worker of the
endpoint's pool (``max_concurrency``), each with the model loaded in it. The gateway's process
keeps the HTTP side (the request, the S3 input and output, the notification); the model's code
runs elsewhere, so:

- its CPU time is not taken under the gateway's GIL;
- a model that crashes its process (a segfault in a native library, ``os._exit``, the kernel's
  OOM killer) fails the invocation it was running with a ``ModelError`` saying so, as SageMaker
  answers when a container's worker dies, and the next invocation gets a fresh process; the
  gateway goes on;
- its memory is its own.

Each child is a fresh interpreter (``python -m ensemble_gateway.local.sagemaker.processes``)
talking to its worker thread over a pair of pipes: the gateway's process is never forked (it runs
many threads, and a child forked while one of them held a lock would inherit it held), and the
child imports only this package and the model's code. The model's own
output to stdout and stderr goes where the gateway's goes, as a container's goes to its log.

A child is started on the first invocation its worker gets (a few hundred milliseconds: it
imports the model's code and runs ``model_fn`` again) and restarted after a crash. The endpoint's
model was loaded once in the gateway's process when it was added, so that a broken model is still
reported by ``add_endpoint``; that copy is dropped once the load has succeeded.
"""

from __future__ import annotations

import contextlib
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from .endpoint import LocalEndpoint
from .toolkit import ModelError

__all__ = ["WORKER_CRASH_STATUS", "ProcessModelHost"]

#: The status of the ``ModelError`` an invocation gets when its worker process dies under it
#: (what a container answers when its model server loses a worker).
WORKER_CRASH_STATUS = 500


def _serve(requests: multiprocessing.connection.Connection, answers: multiprocessing.connection.Connection) -> None:
    """The child: receive the endpoint, load its model, then answer invocations until the pipe closes."""
    from .hosting import ModelHost, ModelLoadError

    # Ctrl-C in the terminal reaches the whole process group; the parent decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    endpoint = requests.recv()
    host = ModelHost(endpoint)
    try:
        host.load()
    except ModelLoadError as error:
        answers.send(("load-error", str(error)))
        return
    answers.send(("ready", None))
    while True:
        try:
            request = requests.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        body, content_type, accept, headers = request
        try:
            answers.send(("ok", host.invoke(body, content_type, accept, headers)))
        except ModelError as failure:
            answers.send(("model-error", (failure.status, failure.message, failure.detail)))
        except Exception as error:  # the toolkit turns model failures into ModelError already
            answers.send(("model-error", (500, f"{type(error).__name__}: {error}", "")))


class _Worker:
    """One child process and the parent's end of its pipe."""

    def __init__(self, endpoint: LocalEndpoint) -> None:
        to_child_read, to_child_write = os.pipe()
        from_child_read, from_child_write = os.pipe()
        try:
            self.process = subprocess.Popen(
                # -c, not -m: the package imports this module, so runpy would warn on every start.
                [sys.executable, "-c", _CHILD_MAIN, str(to_child_read), str(from_child_write)],
                pass_fds=(to_child_read, from_child_write),
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            os.close(to_child_read)
            os.close(from_child_write)
        self._requests = multiprocessing.connection.Connection(to_child_write, readable=False)
        self._answers = multiprocessing.connection.Connection(from_child_read, writable=False)
        self._send(endpoint)
        status, detail = self._receive()
        if status != "ready":
            self.close()
            raise ModelError(WORKER_CRASH_STATUS, f"the model's worker process could not load the model: {detail}")

    def _send(self, message: Any) -> None:
        try:
            self._requests.send(message)
        except OSError:
            raise self._crashed() from None

    def _receive(self) -> tuple[str, Any]:
        try:
            message: tuple[str, Any] = self._answers.recv()
            return message
        except (EOFError, OSError):
            raise self._crashed() from None

    def _crashed(self) -> ModelError:
        try:
            code: int | None = self.process.wait(5)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = str(-code)
            how = f"was killed by signal {name}"
        else:
            how = f"exited with code {code}"
        message = f"the model's worker process {how} while handling the request"
        return ModelError(WORKER_CRASH_STATUS, message, message)

    def invoke(self, request: tuple[bytes, str | None, str | None, dict[str, str]]) -> tuple[bytes, str]:
        self._send(request)
        status, value = self._receive()
        if status == "ok":
            body, content_type = value
            return body, content_type
        code, message, detail = value
        raise ModelError(code, message, detail)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self, timeout: float = 2.0) -> None:
        with contextlib.suppress(Exception):
            self._requests.send(None)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        self._requests.close()
        self._answers.close()


class ProcessModelHost:
    """Serves one endpoint's model from worker processes (see the module docstring).

    Parameters
    ----------
    endpoint : LocalEndpoint
        The endpoint, whose model directory loads without error (``ModelHost.load`` succeeded).

    Notes
    -----
    At most ``endpoint.max_concurrency`` processes run: the endpoint's pool has that many threads,
    and each takes a process for the invocation it runs.
    """

    def __init__(self, endpoint: LocalEndpoint) -> None:
        self.endpoint = endpoint
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    def invoke(
        self, body: bytes, content_type: str | None, accept: str | None, headers: dict[str, str]
    ) -> tuple[bytes, str]:
        """Run the model on one request in a worker process: the response body and content type.

        Raises
        ------
        ModelError
            The model's own error, or ``WORKER_CRASH_STATUS`` when its process died meanwhile.
        """
        worker = self._take()
        try:
            result = worker.invoke((body, content_type, accept, headers))
        except ModelError:
            self._give_back(worker)
            raise
        self._give_back(worker)
        return result

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise ModelError(503, "the endpoint is shutting down")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                self._all.discard(worker)
        try:
            worker = _Worker(self.endpoint)
        except ModelError:
            raise
        except Exception as error:  # the invocation fails as a model error; the gateway goes on
            raise ModelError(
                WORKER_CRASH_STATUS, f"the model's worker process could not start: {type(error).__name__}: {error}"
            ) from error
        with self._lock:
            self._all.add(worker)
        return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if worker.alive and not self._closed:
                self._idle.append(worker)
                return
            self._all.discard(worker)
        worker.close(timeout=0.5)

    @property
    def processes(self) -> int:
        """How many worker processes are running now."""
        with self._lock:
            return sum(1 for worker in self._all if worker.alive)

    def close(self) -> None:
        """Stop every worker process (a busy one is killed after a short grace)."""
        with self._lock:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
        for worker in workers:
            worker.close()


def child_main() -> None:
    """A worker process's entry point: serve the pipes named on the command line."""
    # A gateway that stopped at once (a second Ctrl-C) closes the pipes under a busy child: that
    # child ends quietly, with no traceback on the terminal the two share.
    with contextlib.suppress(EOFError, OSError):
        _serve(
            multiprocessing.connection.Connection(int(sys.argv[1]), writable=False),
            multiprocessing.connection.Connection(int(sys.argv[2]), readable=False),
        )


_CHILD_MAIN = f"from {__name__} import child_main; child_main()"

if __name__ == "__main__":
    child_main()
