#!/usr/bin/env python3
"""A small TCP proxy for the chaos suite: it forwards a loopback port to a server and, on SIGUSR1,
cuts every connection passing through it at once (both sides see the socket reset), the way a
firewall, a NAT timeout or a failing switch would. New connections are accepted again at once.

    tcp-proxy.py --to PORT [--port PORT]

Prints the port it listens on as its first line. Standard library only.
"""
import argparse
import asyncio
import signal
import socket
import struct
import sys


async def main():
    parser = argparse.ArgumentParser(description="TCP proxy whose connections SIGUSR1 cuts")
    parser.add_argument("--to", type=int, required=True, help="the server's port on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    arguments = parser.parse_args()
    live = set()
    cuts = 0

    def cut():
        nonlocal cuts
        cuts += 1
        for writer in list(live):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                # SO_LINGER 0: close with a reset, as a dropped connection looks to both ends.
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            writer.transport.abort()
        live.clear()

    async def pump(reader, writer, peer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            # One side closing ends the pair, as a real TCP path between them would.
            peer.transport.abort()
            writer.transport.abort()
            live.discard(writer)
            live.discard(peer)

    async def accept(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", arguments.to)
        except OSError:
            client_writer.transport.abort()
            return
        live.add(client_writer)
        live.add(server_writer)
        await asyncio.gather(pump(client_reader, server_writer, client_writer),
                             pump(server_reader, client_writer, server_writer))

    server = await asyncio.start_server(accept, "127.0.0.1", arguments.port)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, cut)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
