#!/usr/bin/env python3
"""fooking's chat protocol as a FastCGI backend in Python, standard library
only: the same messages and replies as chat-app (docs/PROTOCOL.md, "The chat
protocol"). One process, so who is online lives in memory; pushes go through
the router's HTTP API with clients/python/fk_router.py.

    python3 examples/python/chat.py --listen 127.0.0.1:9004 --router http://127.0.0.1:9011
    (ROUTER_TOKEN in the environment, when the router asks for one)
    gateway --backend 127.0.0.1:9004
"""

import argparse
import asyncio
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../clients/python"))
from fk_router import Router, RouterError  # noqa: E402

BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT = 1, 3, 4, 5, 6
KEEP_CONN = 1
MAX_NAME, MAX_TEXT = 32, 4096


def decode_pairs(data):
    """FastCGI name-value pairs (1- or 4-byte lengths) into a dict."""
    pairs, i = {}, 0

    def length():
        nonlocal i
        if data[i] < 0x80:
            i += 1
            return data[i - 1]
        i += 4
        return struct.unpack(">I", data[i - 4:i])[0] & 0x7FFFFFFF

    while i < len(data):
        name_len, value_len = length(), length()
        name, value = data[i:i + name_len], data[i + name_len:i + name_len + value_len]
        i += name_len + value_len
        pairs[name.decode()] = value.decode(errors="replace")
    return pairs


def record(kind, request_id, content=b""):
    padding = -len(content) % 8
    return struct.pack(">BBHHBx", 1, kind, request_id, len(content), padding) + content + b"\0" * padding


def response(request_id, status, message):
    body = json.dumps(message).encode() if message is not None else b""
    stdout = f"Status: {status}\r\nContent-Type: application/json\r\n\r\n".encode() + body
    chunks = [stdout[i:i + 65535] for i in range(0, len(stdout), 65535)]
    return b"".join(record(STDOUT, request_id, c) for c in chunks) + record(STDOUT, request_id) + record(
        END_REQUEST, request_id, b"\0" * 8)


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class Chat:
    def __init__(self, router):
        self.router = router
        self.users = {}  # session id -> name

    def userlist(self):
        users = sorted(({"name": n, "id": i} for i, n in self.users.items()), key=lambda u: (u["name"], u["id"]))
        return {"type": "list", "list": users}

    def handle(self, params, body):
        """One event; returns (status, reply or None)."""
        session, event = params.get("SESSIONID", ""), params.get("EVENT", "")
        if event == "2":
            name = self.users.pop(session, None)
            if name is not None:
                self.router.broadcast({"type": "close", "name": name, "id": session})
            return 200, None
        if event not in ("", "0"):
            return 200, None
        try:
            message = json.loads(body)
            kind = message["type"]
        except (ValueError, TypeError, KeyError):
            return 400, {"type": "error", "code": 400, "message": 'invalid JSON or missing "type"'}
        channel = int(message.get("channel", 0) or 0)
        if kind == "login":
            name = str(message.get("name", "")).strip()
            if not name or len(name) > MAX_NAME:
                return 400, {"type": "error", "code": 400, "message": f"a name is 1 to {MAX_NAME} characters"}
            self.users[session] = escape(name)
            self.router.broadcast({"type": "login", "name": self.users[session], "id": session})
            return 200, self.userlist()
        if kind == "join":
            self.router.join(f"chat-channel-{channel}", session)
            return 200, None
        if kind == "leave":
            self.router.leave(f"chat-channel-{channel}", session)
            return 200, None
        if kind == "userlist":
            return 200, self.userlist()
        if kind == "msg":
            text = str(message.get("text", ""))
            if len(text.encode()) > MAX_TEXT:
                return 413, {"type": "error", "code": 413, "message": f"a message is at most {MAX_TEXT} bytes"}
            if session not in self.users:
                return 401, {"type": "error", "code": 401, "message": "log in first"}
            out = {"type": "msg", "name": self.users[session], "channel": channel, "text": escape(text),
                   "time": time.strftime("%H:%M", time.gmtime())}
            if channel > 0:
                self.router.publish(f"chat-channel-{channel}", out)
            else:
                self.router.broadcast(out)
            return 200, None
        return 404, {"type": "error", "code": 404, "message": f'unknown message type "{kind}"'}


async def serve(chat, reader, writer):
    """One FastCGI connection: requests one after another."""
    params, stdin, keep = b"", b"", True
    try:
        while True:
            header = await reader.readexactly(8)
            _, kind, request_id, length, padding = struct.unpack(">BBHHBx", header)
            content = await reader.readexactly(length + padding)
            content = content[:length]
            if kind == BEGIN_REQUEST:
                params, stdin, keep = b"", b"", bool(content[2] & KEEP_CONN)
            elif kind == PARAMS:
                params += content
            elif kind == STDIN and content:
                stdin += content
            elif kind == STDIN:
                try:
                    status, reply = await asyncio.to_thread(chat.handle, decode_pairs(params), stdin)
                except RouterError as err:
                    status, reply = 503, {"type": "error", "code": 503, "message": f"router unavailable: {err.message}"}
                writer.write(response(request_id, status, reply))
                await writer.drain()
                if not keep:
                    break
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:9004")
    parser.add_argument("--router", default="http://127.0.0.1:9011", help="the router's HTTP API")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    chat = Chat(Router(args.router, os.environ.get("ROUTER_TOKEN")))
    server = await asyncio.start_server(lambda r, w: serve(chat, r, w), host, int(port))
    print(f"python chat backend on {args.listen}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
