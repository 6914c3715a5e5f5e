"""What the tests share: the course's data for tests that run in a temporary folder, and a
free port for the tests that start servers on the loopback interface."""

import os
import socket
from pathlib import Path

import pytest

# Tests that run commands or notebooks in a temporary folder find the datasets of this checkout.
os.environ.setdefault("CNNLIB_DATA", str(Path(__file__).resolve().parents[1] / "data"))


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the time of asking."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
