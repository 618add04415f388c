"""The `pusher` server SDK from PyPI against fk's router.

`auth SOCKET CHANNEL USER`: prints the SDK's channel signature (with
channel_data for a presence channel). `api`: triggers to one and many
channels and a batch, reads channels and users, takes the router's
webhooks on WEBHOOK_PORT (checked with the SDK's validate_webhook), and
prints what it read as JSON. Env: ROUTER_HTTP_PORT, APP_ID, APP_KEY,
APP_SECRET, WEBHOOK_PORT.
"""
import http.server
import json
import os
import sys
import threading
import time

import pusher

client = pusher.Pusher(
    app_id=os.environ["APP_ID"],
    key=os.environ["APP_KEY"],
    secret=os.environ["APP_SECRET"],
    host="127.0.0.1",
    port=int(os.environ["ROUTER_HTTP_PORT"]),
    ssl=False,
)

def wait_for(got, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if got():
            return got()
        time.sleep(0.05)
    return None


if sys.argv[1] == "auth":
    socket, channel, user = sys.argv[2:5]
    data = {"user_id": user, "user_info": {"name": user.title()}} if channel.startswith("presence-") else None
    print(json.dumps(client.authenticate(channel=channel, socket_id=socket, custom_data=data)))
else:
    hooks, refused = [], []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            key, signature = self.headers["X-Pusher-Key"], self.headers["X-Pusher-Signature"]
            checked = client.validate_webhook(key=key, signature=signature, body=body)
            tampered = client.validate_webhook(key=key, signature=signature, body=body.replace('"events"', '"events" '))
            if checked is not None:
                hooks.extend(event["name"] + " " + event["channel"] for event in checked["events"])
            refused.append(tampered is None)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    receiver = http.server.HTTPServer(("127.0.0.1", int(os.environ["WEBHOOK_PORT"])), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    client.trigger("news", "py-one", {"n": 1})
    client.trigger(["news", "presence-room"], "py-many", {"n": 2})
    client.trigger_batch([
        {"channel": "news", "name": "py-batch", "data": {"n": 3}},
        {"channel": "presence-room", "name": "py-batch", "data": {"n": 4}},
    ])
    print(json.dumps({
        "channels": client.channels_info(attributes=["subscription_count"]),
        "presence": client.channels_info(prefix_filter="presence-", attributes=["user_count"]),
        "news": client.channel_info("news", ["subscription_count"]),
        "users": client.users_info("presence-room"),
        "terminated": client.terminate_user_connections("nobody"),
        # The router tries a webhook again for 30 s: the one from before
        # this receiver listened comes too.
        "webhooks": wait_for(lambda: "channel_occupied news" in hooks and hooks),
        "tampered_refused": all(refused),
    }))
