"""Shared test settings: 1 CPU thread (2 threads collapse when another process is busy on these
2-core machines; see DESIGN §5), deterministic seeds, and a temporary run folder fixture."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
