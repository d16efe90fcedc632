"""Delivery: the threads between a raised alert and the notifiers.

:mod:`.pipeline`: one app's inbound queue and dispatch thread (throttle, signals, log),
and its :meth:`~.pipeline.Pipeline.divert` seam for test helpers. :mod:`.worker`: one
thread per notifier, with retries (:class:`RetryPolicy`) and refreshes. :mod:`.drops`:
what full queues do with what they cannot take.
"""

from .pipeline import Pipeline
from .worker import NotifierWorker, RetryPolicy

__all__ = ["NotifierWorker", "Pipeline", "RetryPolicy"]
