// A TCP relay to a server that can cut its connections (a reset, no close
// frame) and refuse new ones, as a dead network does. The JS client's tests
// and the chat page's resume test in Chromium both drop connections with it.
import net from "node:net";

/** A relay to `url`'s host and port, listening on a free loopback port. */
export async function relayTo(url) {
  const target = new URL(url);
  const sockets = new Set();
  let shut = false;
  const server = net.createServer((client) => {
    if (shut) return client.resetAndDestroy();
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client);
    client.pipe(upstream).pipe(client);
    const end = () => { sockets.delete(client); client.destroy(); upstream.destroy(); };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    /** `url` with the relay's host and port in place of the server's. */
    url: Object.assign(new URL(url), { host: `127.0.0.1:${server.address().port}` }).toString(),
    cut() { shut = true; for (const socket of sockets) socket.resetAndDestroy(); },
    open() { shut = false; },
    stop() { this.cut(); server.close(); },
  };
}
