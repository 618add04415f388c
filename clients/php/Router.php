<?php
// A client for the router's JSON HTTP API (docs/PROTOCOL.md, section 4):
// one file, no dependencies beyond PHP's curl extension. One curl handle
// per Router, so every call of a request reuses one kept-alive connection.
//
//   require_once 'Router.php';
//   $router = new Router('http://127.0.0.1:9011', getenv('ROUTER_TOKEN') ?: null);
//   $router->join('room-1', $session);
//   $router->publish('room-1', ['type' => 'bid', 'amount' => 120]);   // arrays go as JSON text
//   $router->send($session, Router::binary("\x00\x01"));             // a binary frame
//   $results = $router->batch()->join('room-1', $a)->publish('room-1', 'hi')->run();
//
// Every failure throws a RouterException: the router's error code and
// message and the HTTP status, or code "unreachable" with status 0.

declare(strict_types=1);

final class RouterException extends RuntimeException
{
    public function __construct(public readonly int $status, public readonly string $errorCode, string $message)
    {
        parent::__construct("router: $errorCode: $message", $status);
    }
}

/** Bytes that go to clients as a binary frame. */
final class RouterBinary
{
    public function __construct(public readonly string $bytes)
    {
    }
}

/**
 * The router's commands, each turned into its JSON body once. A Router
 * runs them at once; a RouterBatch queues them for one call.
 */
trait RouterCommands
{
    /** @param string|string[] $sessions */
    public function send(string|array $sessions, mixed $data): mixed
    {
        return $this->command('send', ['sessions' => (array) $sessions] + self::payload($data));
    }

    public function sendUser(string $user, mixed $data): mixed
    {
        return $this->command('send_user', ['user' => $user] + self::payload($data));
    }

    public function broadcast(mixed $data): mixed
    {
        return $this->command('broadcast', self::payload($data));
    }

    /** @param string[] $except sessions left out */
    public function publish(string $channel, mixed $data, array $except = []): mixed
    {
        if ($except) {
            return $this->command('publish_except', ['channel' => $channel, 'except' => $except] + self::payload($data));
        }
        return $this->command('publish', ['channel' => $channel] + self::payload($data));
    }

    /**
     * @param string|string[] $sessions
     * @param ?string $user on a presence- channel, who they are to the members (their bound user, else their id, when null)
     * @param mixed $info on a presence- channel, what the members see besides the user
     * @param bool $history send each new member the channel's kept messages first (the router's --history)
     * @param ?string $since only those after this offset (a client's last, from fk.js `offsets()`); the reply says whether it is still `recovered`
     */
    public function join(string $channel, string|array $sessions, ?string $user = null, mixed $info = null, bool $history = false, ?string $since = null): mixed
    {
        $body = ['channel' => $channel, 'sessions' => (array) $sessions];
        if ($user !== null) {
            $body['user'] = $user;
        }
        if ($info !== null) {
            $body['info'] = $info;
        }
        if ($history) {
            $body['history'] = true;
        }
        if ($since !== null) {
            $body['since'] = $since;
        }
        return $this->command('join', $body);
    }

    /** @param string|string[] $sessions */
    public function leave(string $channel, string|array $sessions): mixed
    {
        return $this->command('leave', ['channel' => $channel, 'sessions' => (array) $sessions]);
    }

    /** @param string|string[] $sessions */
    public function kick(string|array $sessions): mixed
    {
        return $this->command('kick', ['sessions' => (array) $sessions]);
    }

    public function bind(string $session, string $user): mixed
    {
        return $this->command('bind', ['session' => $session, 'user' => $user]);
    }

    public function members(string $channel): mixed
    {
        return $this->command('members', ['channel' => $channel]);
    }

    public function count(string $channel): mixed
    {
        return $this->command('count', ['channel' => $channel]);
    }

    public function channels(string $session): mixed
    {
        return $this->command('channels', ['session' => $session]);
    }

    /**
     * A presence- channel's members, a page at a time in session id order:
     * ['count' => n, 'members' => [['session', 'user', 'info', 'online'], ...], 'next' => cursor when there are more].
     * Pass 'next' as $cursor for the page after.
     */
    public function presence(string $channel, ?int $limit = null, ?string $cursor = null): mixed
    {
        $body = ['channel' => $channel] + ($limit === null ? [] : ['limit' => $limit]);
        return $this->command('presence', $body + ($cursor === null ? [] : ['cursor' => $cursor]));
    }

    /** The messages a channel keeps, oldest first: ['entries' => [['offset', 'data' or 'data_base64'], ...]]. */
    public function history(string $channel, ?int $limit = null): mixed
    {
        return $this->command('history', ['channel' => $channel] + ($limit === null ? [] : ['limit' => $limit]));
    }

    /** @param string[] $sessions @param string[] $users */
    public function online(array $sessions = [], array $users = []): mixed
    {
        return $this->command('online', ['sessions' => $sessions, 'users' => $users]);
    }

    /** A string goes as a text frame, RouterBinary as binary, anything else as JSON text. */
    private static function payload(mixed $data): array
    {
        return $data instanceof RouterBinary ? ['data_base64' => base64_encode($data->bytes)] : ['data' => $data];
    }

    abstract private function command(string $name, array $body): mixed;
}

final class Router
{
    use RouterCommands {
        members as private membersReply;
        count as private countReply;
        channels as private channelsReply;
    }

    private CurlHandle $curl;

    public function __construct(
        private readonly string $url = 'http://127.0.0.1:9011',
        private readonly ?string $token = null,
        private readonly float $timeout = 5.0,
    ) {
        $this->curl = curl_init();
    }

    public static function binary(string $bytes): RouterBinary
    {
        return new RouterBinary($bytes);
    }

    /** @return string[] the channel's members, sorted */
    public function members(string $channel): array
    {
        return $this->membersReply($channel)['sessions'];
    }

    public function count(string $channel): int
    {
        return $this->countReply($channel)['count'];
    }

    /** @return string[] the session's channels, sorted */
    public function channels(string $session): array
    {
        return $this->channelsReply($session)['channels'];
    }

    public function info(): array
    {
        return $this->call('info', []);
    }

    /** Commands queued here run in one call, in order: `->run()` gives each one's result. */
    public function batch(): RouterBatch
    {
        return new RouterBatch($this);
    }

    /** @internal a POST of `$body` to /v1/`$name`, its JSON result */
    public function call(string $name, array $body): array
    {
        $headers = ['Content-Type: application/json'];
        if ($this->token !== null) {
            $headers[] = "Authorization: Bearer {$this->token}";
        }
        curl_setopt_array($this->curl, [
            CURLOPT_URL => rtrim($this->url, '/') . "/v1/$name",
            CURLOPT_POST => true,
            CURLOPT_POSTFIELDS => json_encode($body, JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE),
            CURLOPT_HTTPHEADER => $headers,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_TIMEOUT_MS => (int) ($this->timeout * 1000),
            CURLOPT_CONNECTTIMEOUT_MS => (int) ($this->timeout * 1000),
        ]);
        $raw = curl_exec($this->curl);
        if ($raw === false) {
            throw new RouterException(0, 'unreachable', curl_error($this->curl));
        }
        $status = curl_getinfo($this->curl, CURLINFO_RESPONSE_CODE);
        $reply = json_decode($raw, true);
        if ($status !== 200 || !is_array($reply)) {
            $error = is_array($reply) ? ($reply['error'] ?? []) : [];
            throw new RouterException($status, $error['code'] ?? 'bad_reply', $error['message'] ?? substr($raw, 0, 200));
        }
        return $reply;
    }

    private function command(string $name, array $body): array
    {
        return $this->call($name, $body);
    }
}

final class RouterBatch
{
    use RouterCommands;

    /** @var array<int, array> */
    private array $queued = [];

    public function __construct(private readonly Router $router)
    {
    }

    /** @return array<int, array> each command's result, or ['error' => [...]] where it failed to apply */
    public function run(): array
    {
        if (!$this->queued) {
            return [];
        }
        [$queued, $this->queued] = [$this->queued, []];
        return $this->router->call('batch', $queued)['results'];
    }

    private function command(string $name, array $body): self
    {
        $this->queued[] = ['command' => $name] + $body;
        return $this;
    }
}
