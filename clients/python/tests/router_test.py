"""fk_router.py against a real router: e2e/tests/router_clients.rs starts
the router, holds two WebSocket clients (SESSION_A, SESSION_B) and checks
what they receive; this script checks every call's result and error.

    ROUTER_URL=http://127.0.0.1:9011 ROUTER_TOKEN=... SESSION_A=... SESSION_B=... python3 router_test.py
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from fk_router import Router, RouterError  # noqa: E402


def check(ok, what, seen=None):
    if not ok:
        sys.exit(f"FAILED: {what}" + ("" if seen is None else f": {seen!r}"))


def raises(call, status, code):
    try:
        call()
    except RouterError as err:
        check((err.status, err.code) == (status, code), f"expected {status} {code}", (err.status, err.code, str(err)))
        return
    check(False, f"expected a RouterError {status} {code}")


url, token = os.environ["ROUTER_URL"], os.environ["ROUTER_TOKEN"]
a, b = os.environ["SESSION_A"], os.environ["SESSION_B"]
router = Router(url, token)

raises(lambda: Router(url, "wrong").count("auction"), 401, "unauthorized")
raises(lambda: Router("http://127.0.0.1:1", token, 1.0).count("auction"), 0, "unreachable")
raises(lambda: router.publish("", "x"), 400, "bad_request")
raises(lambda: router.send(["not-a-session"], "x"), 400, "bad_request")

check(router.join("auction", [a, b]) == {"sessions": 2}, "join")
check(router.members("auction") == sorted([a, b]), "members", router.members("auction"))
check(router.count("auction") == 2, "count")
check(router.channels(a) == ["auction"], "channels")

check(router.publish("auction", {"type": "bid", "amount": 120})["sessions"] == 2, "publish JSON")
check(router.publish("auction", "not to a", exclude=[a])["sessions"] == 1, "publish_except")
check(router.send(a, "to a")["sessions"] == 1, "send")
check(router.send(b, b"\x00\x01\xff")["sessions"] == 1, "send binary")
check(router.bind(a, "u42") == {"sessions": 1}, "bind")
check(router.send_user("u42", "to user 42")["sessions"] == 1, "send_user")
online = router.online([a, "ffffffffffffffff"], ["u42", "nobody"])
check(online == {"sessions": [a], "users": ["u42"]}, "online", online)

results = router.batch().leave("auction", b).publish("auction", "only a").count("auction").run()
check(len(results) == 3 and results[0] == {"sessions": 1} and results[2] == {"count": 1}, "batch", results)
check(router.batch().run() == [], "an empty batch sends nothing")

# A presence channel: a joins as ann, and gets the member list.
check(router.join("presence-auction", a, user="ann", info={"paddle": 7}) == {"sessions": 1}, "presence join")
listed = router.presence("presence-auction")
ann = {"session": a, "user": "ann", "info": {"paddle": 7}, "online": True}
check(listed == {"count": 1, "members": [ann]}, "presence", listed)
check(router.history("auction") == {"entries": []}, "history of a channel that keeps none")
check(router.leave("presence-auction", a) == {"sessions": 1}, "presence leave")
since = router.join("quiet", b, since="1")
check(since == {"sessions": 1, "recovered": False}, "join since an offset of a channel that keeps none", since)
check(router.leave("quiet", b) == {"sessions": 1}, "leave quiet")

# Every call above went over one kept-alive connection; another thread has its own.
check(router.connections_opened == 1, "keep-alive: one connection", router.connections_opened)
other = threading.Thread(target=lambda: router.count("auction"))
other.start()
other.join()
check(router.connections_opened == 2, "a connection per thread", router.connections_opened)

# The router closes a connection idle past its header timeout (10 s): the
# next call goes on a new one, without an error.
time.sleep(11)
check(router.count("auction") == 1, "a call after the router closed the idle connection")
check(router.connections_opened == 3, "a new connection after the idle one closed", router.connections_opened)

print("ok")
