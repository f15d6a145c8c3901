"""A relay process that SIGKILLs itself right after its Nth publish, before any mark.

python -m tests.realtime.relay_victim REDIS_URL N   (database from WEALTHWISE_* env)
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from broadcaster import Broadcast

from domain.core.db import create_engine
from domain.core.settings import Settings
from domain.realtime.relay import relay_once


async def main(redis_url: str, kill_after: int) -> None:
    engine = create_engine(Settings())
    published = 0
    async with Broadcast(redis_url) as broadcast:

        async def publish(channel: str, message: str) -> None:
            nonlocal published
            await broadcast.publish(channel, message)  # PUBLISH answered: it is out
            published += 1
            if published == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

        await relay_once(engine, publish)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
