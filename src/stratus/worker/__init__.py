"""The worker: from queued job to recorded result."""

from stratus.worker._events import Completed, Failed, Lost, Outcome, Released
from stratus.worker._result import message_id
from stratus.worker._worker import Worker, on_demand

__all__ = ["Completed", "Failed", "Lost", "Outcome", "Released", "Worker", "message_id",
           "on_demand"]
