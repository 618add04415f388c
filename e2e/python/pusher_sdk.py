"""The `pusher` server SDK from PyPI against fk's router.

`auth SOCKET CHANNEL USER`: prints the SDK's channel signature (with
channel_data for a presence channel). `api`: triggers to one and many
channels and a batch, reads channels and users, and prints what it read
as JSON. Env: ROUTER_HTTP_PORT, APP_ID, APP_KEY, APP_SECRET.
"""
import json
import os
import sys

import pusher

client = pusher.Pusher(
    app_id=os.environ["APP_ID"],
    key=os.environ["APP_KEY"],
    secret=os.environ["APP_SECRET"],
    host="127.0.0.1",
    port=int(os.environ["ROUTER_HTTP_PORT"]),
    ssl=False,
)

if sys.argv[1] == "auth":
    socket, channel, user = sys.argv[2:5]
    data = {"user_id": user, "user_info": {"name": user.title()}} if channel.startswith("presence-") else None
    print(json.dumps(client.authenticate(channel=channel, socket_id=socket, custom_data=data)))
else:
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
    }))
