"""The channel layer: channels_redis's, with a receive that always ends when it is cancelled.

On Python 3.11, redis-py writes every command under ``asyncio.wait_for(..., socket_timeout)``,
and 3.11's ``wait_for`` drops a cancellation that arrives just as the write finishes
(CPython gh-86296; 3.12 reimplemented ``wait_for`` without the flaw). When that happens in a
consumer's channel receive, the receive goes on with its blocking pops (one every
``brpop_timeout`` seconds) for ever, and channels' ``await_many_dispatch``, which cancels it and
waits for it once the websocket is gone, waits for ever too: the closed websocket's task never
ends. A refused socket hits the window most often, because it is closed while its receive is
still opening its Redis connection.

The task still counts the lost request (``Task.cancelling()``), so the pop loop checks it after
each pop and ends the receive: at most one blocking pop (``brpop_timeout``, 5 s) late, instead
of never. A message popped by that pop is not lost: channels_redis keeps it in the channel's
backup queue and puts it back on the next receive.
"""

from __future__ import annotations

import asyncio

from channels_redis.core import RedisChannelLayer as _RedisChannelLayer

__all__ = ["RedisChannelLayer"]


class RedisChannelLayer(_RedisChannelLayer):
    async def _brpop_with_clean(self, index, channel, timeout):
        member = await super()._brpop_with_clean(index, channel, timeout)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        return member
