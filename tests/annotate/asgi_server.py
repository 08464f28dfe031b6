"""Serve an ASGI app (FastAPI) for a test: uvicorn in a thread on 127.0.0.1 at a free port.
Shared by the annotation-app tests and the fake OpenAI judge server (tests/pseudolabel)."""

import socket
import threading
import time
from contextlib import contextmanager


@contextmanager
def serve(app):
    """Run ``app`` with uvicorn in a thread on 127.0.0.1:<free port>; yield the base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
