-- wrk: POST the same 64-byte body the echo scenario sends.
wrk.method = "POST"
wrk.body = string.rep("x", 64)
wrk.headers["Content-Type"] = "text/plain"
