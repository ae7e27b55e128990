"""Answers no WinRM service sends, for attack tests: huge, endless or trickling, before or after the logon.

A node (or anything that took its address) can answer a request with a body of any size, a
chunked body that never ends, or one byte at a time, in the headers or the body. The client
must stop reading at its size cap and at its deadline; these streams stop when the client
closes the connection or the node stops.
"""

from __future__ import annotations

import asyncio
import contextlib

HOSTILE_MODES = ("huge", "endless-chunked", "trickle-body", "trickle-headers")
BLOCK = 1024 * 1024
#: the body size a "huge" answer announces and sends (the attack measured 500 MB)
HUGE_BYTES = 500 * 1024 * 1024


async def send_hostile(
    writer: asyncio.StreamWriter, mode: str, interval: float, stopping: asyncio.Event, sent: list[int]
) -> None:
    """Write the hostile answer `mode` until the client goes away or the node stops; `sent[0]` counts bytes."""

    async def put(data: bytes) -> None:
        # asyncio's drain() does not raise once the client has gone: stop here instead of writing forever.
        if writer.is_closing() or writer.transport.get_write_buffer_size() > 4 * BLOCK:
            raise ConnectionResetError("the client closed the connection")
        writer.write(data)
        await writer.drain()
        if writer.is_closing():
            raise ConnectionResetError("the client closed the connection")
        sent[0] += len(data)

    async def pause() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), interval)

    with contextlib.suppress(ConnectionError, OSError):
        if mode == "huge":
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: {HUGE_BYTES}\r\n\r\n"
            await put(head.encode())
            block = b"<" * BLOCK
            for _ in range(HUGE_BYTES // BLOCK):
                if stopping.is_set():
                    return
                await put(block)
        elif mode == "endless-chunked":
            await put(b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = f"{BLOCK:x}\r\n".encode() + b"<" * BLOCK + b"\r\n"
            while not stopping.is_set():
                await put(chunk)
        elif mode == "trickle-body":
            await put(b"HTTP/1.1 200 OK\r\nContent-Type: application/soap+xml\r\nContent-Length: 100000\r\n\r\n")
            while not stopping.is_set():
                await put(b"<")
                await pause()
        elif mode == "trickle-headers":
            await put(b"HTTP/1.1 200 OK\r\nX-Padding: ")
            while not stopping.is_set():
                await put(b"a")
                await pause()
        else:
            raise ValueError(f"hostile answer must be one of {', '.join(HOSTILE_MODES)}")
