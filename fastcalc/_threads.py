"""Independent pieces of work with Python callables, run on a pool of threads.

NumPy's ufuncs and the package's ``nogil`` kernels release the GIL, so pieces that spend their
time there overlap on several cores. Each piece is computed exactly as it would be alone, and
the pieces are fixed by the caller (never by the thread count), so results do not depend on
the number of threads. Every piece runs in a copy of the caller's context, so context-local
settings such as ``np.errstate`` apply on the worker threads as on the caller's.

The pool is the parallelism: a compiled kernel that a piece calls with ``n_threads=None`` runs
on one thread (``num_threads(1)``), not on a team per worker (workers x cores threads).
"""
import contextvars
from concurrent.futures import ThreadPoolExecutor, as_completed

from ._parallel import num_threads

__all__ = ["run_on_threads"]


def run_on_threads(task, items, workers, on_done=None):
    """Call ``task(item)`` for every item, on up to ``workers`` threads.

    With one worker (or one item) the calls run in order on the calling thread. Otherwise the
    first exception propagates unchanged and items not yet started are cancelled (the calling
    thread waits for those already running). ``on_done(item)`` runs on the calling thread after
    each item that completed.
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        for item in items:
            task(item)
            if on_done is not None:
                on_done(item)
        return

    def run_piece(item):
        with num_threads(1):
            task(item)

    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        futures = {pool.submit(contextvars.copy_context().run, run_piece, item): item
                   for item in items}
        try:
            for future in as_completed(futures):
                future.result()
                if on_done is not None:
                    on_done(futures[future])
        except BaseException:
            for future in futures:
                future.cancel()
            raise
