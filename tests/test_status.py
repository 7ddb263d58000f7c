import numpy as np
import pytest

from fastcalc import ConvergenceError, Status
from fastcalc._parallel import HAVE_OPENMP, max_threads, n_threads_for
from fastcalc._status import message_of, messages_of


def test_codes_match_the_design():
    assert [int(s) for s in Status] == [0, 1, 2, 3, 4, 5]
    assert issubclass(ConvergenceError, RuntimeError)


def test_every_code_has_one_distinct_message():
    messages = [message_of(s) for s in Status]
    assert len(set(messages)) == len(messages)
    assert list(messages_of(np.array([3, 0]))) == [message_of(3), message_of(0)]


def test_thread_resolution():
    assert n_threads_for(None) == max_threads() >= 1
    assert n_threads_for(1) == 1
    assert n_threads_for(2) == (2 if HAVE_OPENMP else 1)
    with pytest.raises(ValueError, match="n_threads"):
        n_threads_for(0)
    with pytest.raises(TypeError, match="n_threads"):
        n_threads_for(1.5)


def test_kernel_status_codes_match_the_enum():
    """The C enum the kernels use (_status_codes.pxd) has Status's names and values."""
    import re
    from pathlib import Path

    import fastcalc

    pxd = (Path(fastcalc.__file__).parent / "_status_codes.pxd").read_text()
    codes = {name: int(value) for name, value in re.findall(r"^\s+([A-Z_]+) = (\d+)$", pxd, re.M)}
    assert codes == {s.name: int(s) for s in Status}


def test_thread_requests_are_capped_and_numpy_ints_accepted():
    import os

    import numpy as np
    assert n_threads_for(np.int64(1)) == 1
    assert 1 <= n_threads_for(10**6) <= 4 * (os.cpu_count() or 1)
