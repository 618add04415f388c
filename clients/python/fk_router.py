"""A client for the router's JSON HTTP API (docs/PROTOCOL.md, section 4):
one file, standard library only. Each thread keeps one connection alive,
and a call on a connection the router closed while it was idle goes again
on a new one.

    from fk_router import Router
    router = Router("http://127.0.0.1:9011", token=os.environ.get("ROUTER_TOKEN"))
    router.join("room-1", session)
    router.publish("room-1", {"type": "bid", "amount": 120})  # dicts and lists go as JSON text
    router.send(session, b"\\x00\\x01")                       # bytes go as a binary frame
    results = router.batch().join("room-1", a).publish("room-1", "hi").run()

Every failure raises RouterError: the router's error code and message and
the HTTP status, or code "unreachable" with status 0.
"""

import base64
import http.client
import json
import threading
import urllib.parse

__all__ = ["Router", "Batch", "RouterError"]


class RouterError(Exception):
    def __init__(self, status, code, message):
        super().__init__(f"router: {code}: {message}")
        self.status, self.code, self.message = status, code, message


def _payload(data):
    """A str goes as a text frame, bytes as binary, anything else as JSON text."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return {"data_base64": base64.b64encode(data).decode()}
    return {"data": data}


def _sessions(sessions):
    return [sessions] if isinstance(sessions, str) else list(sessions)


class _Commands:
    """The router's commands, each turned into its JSON body once: a Router
    runs them at once, a Batch queues them for one call."""

    def send(self, sessions, data):
        return self._command("send", {"sessions": _sessions(sessions), **_payload(data)})

    def send_user(self, user, data):
        return self._command("send_user", {"user": user, **_payload(data)})

    def broadcast(self, data):
        return self._command("broadcast", _payload(data))

    def publish(self, channel, data, exclude=()):
        """To the channel's members, but for the sessions in `exclude`."""
        if exclude:
            return self._command("publish_except", {"channel": channel, "except": _sessions(exclude), **_payload(data)})
        return self._command("publish", {"channel": channel, **_payload(data)})

    def join(self, channel, sessions, user=None, info=None, history=False, since=None):
        """On a presence- channel, `user` and `info` are who they are to the
        members (their bound user, else their id, when None); `history` sends
        each new member the channel's kept messages first, `since` only those
        after that offset (the reply says whether it is still "recovered")."""
        body = {"channel": channel, "sessions": _sessions(sessions)}
        if user is not None:
            body["user"] = user
        if info is not None:
            body["info"] = info
        if history:
            body["history"] = True
        if since is not None:
            body["since"] = since
        return self._command("join", body)

    def leave(self, channel, sessions):
        return self._command("leave", {"channel": channel, "sessions": _sessions(sessions)})

    def kick(self, sessions):
        return self._command("kick", {"sessions": _sessions(sessions)})

    def bind(self, session, user):
        return self._command("bind", {"session": session, "user": user})

    def members(self, channel):
        return self._command("members", {"channel": channel})

    def count(self, channel):
        return self._command("count", {"channel": channel})

    def channels(self, session):
        return self._command("channels", {"session": session})

    def presence(self, channel, limit=None, cursor=None):
        """A presence- channel's members, a page at a time in session id order:
        {"count": n, "members": [{"session", "user", "info", "online"}, ...], "next": cursor when there are more}.
        Pass "next" as `cursor` for the page after."""
        body = {"channel": channel, **({} if limit is None else {"limit": limit})}
        return self._command("presence", {**body, **({} if cursor is None else {"cursor": cursor})})

    def history(self, channel, limit=None):
        """The messages a channel keeps, oldest first: {"entries": [{"offset", "data" or "data_base64"}, ...]}."""
        return self._command("history", {"channel": channel, **({} if limit is None else {"limit": limit})})

    def online(self, sessions=(), users=()):
        return self._command("online", {"sessions": list(sessions), "users": list(users)})


class Router(_Commands):
    def __init__(self, url="http://127.0.0.1:9011", token=None, timeout=5.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {url!r}")
        self._https = parts.scheme == "https"
        self._host, self._port, self._prefix = parts.hostname, parts.port, parts.path.rstrip("/")
        self._headers = {"Content-Type": "application/json"}
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self.connections_opened = 0

    def members(self, channel):
        """The channel's members, sorted."""
        return super().members(channel)["sessions"]

    def count(self, channel):
        return super().count(channel)["count"]

    def channels(self, session):
        """The session's channels, sorted."""
        return super().channels(session)["channels"]

    def info(self):
        return self.call("info", {})

    def batch(self):
        """Commands queued on it run in one call, in order: `.run()` gives each one's result."""
        return Batch(self)

    def call(self, name, body):
        """A POST of `body` to /v1/`name`; its JSON result."""
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        while True:
            conn, reused = self._connection()
            try:
                conn.request("POST", f"{self._prefix}/v1/{name}", payload, self._headers)
                reply = conn.getresponse()
                raw = reply.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as err:
                self._local.conn = None
                conn.close()
                # A kept-alive connection the router closed while idle: the
                # request never reached it, so it goes again, once, on a new one.
                if not reused:
                    raise RouterError(0, "unreachable", str(err)) from None
            except (OSError, http.client.HTTPException) as err:
                self._local.conn = None
                conn.close()
                raise RouterError(0, "unreachable", str(err) or type(err).__name__) from None
        try:
            result = json.loads(raw)
        except ValueError:
            result = None
        if reply.status != 200 or not isinstance(result, dict):
            error = result.get("error", {}) if isinstance(result, dict) else {}
            message = error.get("message") or raw[:200].decode(errors="replace")
            raise RouterError(reply.status, error.get("code", "bad_reply"), message)
        return result

    def _connection(self):
        """This thread's connection, and whether it served a call before."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            return conn, True
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = kind(self._host, self._port, timeout=self._timeout)
        try:
            conn.connect()
        except OSError as err:
            raise RouterError(0, "unreachable", str(err)) from None
        with self._lock:
            self.connections_opened += 1
        self._local.conn = conn
        return conn, False

    def _command(self, name, body):
        return self.call(name, body)


class Batch(_Commands):
    def __init__(self, router):
        self._router, self._queued = router, []

    def run(self):
        """Each command's result, or {"error": {...}} where it failed to apply."""
        if not self._queued:
            return []
        queued, self._queued = self._queued, []
        return self._router.call("batch", queued)["results"]

    def _command(self, name, body):
        self._queued.append({"command": name, **body})
        return self
