"""A running job's text as the engine makes it, for the clients streaming the job.

The worker publishes each text delta of an attempt; stream routes read the deltas past the
ones they have sent and wait for more. An attempt's stream is named by its lease token, so
the text of two attempts of one job is never mixed. Streams hold only what may be lost: a
reader that arrives late, misses deltas, or cannot reach the stream completes its text from
the job's stored result.

Two implementations: :class:`LocalTokenStream` in the process (the worker and the routes in
one process), :class:`RedisTokenStream` in Redis Streams, read by every API node.
"""

from stratus.streams._local import LocalTokenStream
from stratus.streams._redis import RedisTokenStream
from stratus.streams._types import START, Position, Read, State, TokenStream

__all__ = ["START", "LocalTokenStream", "Position", "Read", "RedisTokenStream", "State",
           "TokenStream"]
