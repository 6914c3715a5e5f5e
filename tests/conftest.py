"""What the tests share: the course's data for tests that run in a temporary folder."""

import os
from pathlib import Path

# Tests that run commands or notebooks in a temporary folder find the datasets of this checkout.
os.environ.setdefault("CNNLIB_DATA", str(Path(__file__).resolve().parents[1] / "data"))
