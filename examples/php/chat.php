<?php
// fooking's chat protocol as a plain PHP backend under php-fpm: the same
// messages and replies as chat-app (docs/PROTOCOL.md, "The chat protocol").
// State (who is online) lives in Redis; pushes go through the router's
// HTTP API. The gateway passes the addresses as static params:
//   gateway --param SCRIPT_FILENAME=/srv/chat.php --param ROUTER_HTTP=http://127.0.0.1:9011 \
//           --param REDIS_HOST=127.0.0.1 --param REDIS_PORT=6379

const MAX_NAME = 32;
const MAX_TEXT = 4096;

header('Content-Type: application/json');

function router(string $command, array $body): void {
    $context = stream_context_create(['http' => [
        'method' => 'POST',
        'header' => "Content-Type: application/json\r\n",
        'content' => json_encode($body),
        'timeout' => 5,
    ]]);
    if (@file_get_contents(($_SERVER['ROUTER_HTTP'] ?? 'http://127.0.0.1:9011') . "/v1/$command", false, $context) === false) {
        throw new RuntimeException('router unavailable');
    }
}

function push_all(array $message): void {
    router('broadcast', ['data' => json_encode($message)]);
}

function escape_text(string $text): string {
    return str_replace(['&', '<', '>'], ['&amp;', '&lt;', '&gt;'], $text);
}

function reply(array $message, int $status = 200): void {
    http_response_code($status);
    echo json_encode($message);
}

function error_reply(int $code, string $message): void {
    reply(['type' => 'error', 'code' => $code, 'message' => $message], $code);
}

function users(Redis $redis): array {
    $list = [];
    foreach ($redis->hGetAll('php-chat:users') as $id => $name) {
        $list[] = ['name' => $name, 'id' => (string) $id];
    }
    usort($list, fn($a, $b) => [$a['name'], $a['id']] <=> [$b['name'], $b['id']]);
    return ['type' => 'list', 'list' => $list];
}

$session = $_SERVER['SESSIONID'] ?? '';
$event = $_SERVER['EVENT'] ?? '';
$redis = new Redis();
$redis->connect($_SERVER['REDIS_HOST'] ?? '127.0.0.1', (int) ($_SERVER['REDIS_PORT'] ?? 6379), 2.0);

try {
    if ($event === '2') {
        $name = $redis->hGet('php-chat:users', $session);
        if ($name !== false) {
            $redis->hDel('php-chat:users', $session);
            push_all(['type' => 'close', 'name' => $name, 'id' => $session]);
        }
        return;
    }
    if (!empty($event)) {
        return;
    }
    $message = json_decode(file_get_contents('php://input'), true);
    if (!is_array($message) || !isset($message['type'])) {
        error_reply(400, 'invalid JSON or missing "type"');
        return;
    }
    $channel = (int) ($message['channel'] ?? 0);
    switch ($message['type']) {
        case 'login':
            $name = trim((string) ($message['name'] ?? ''));
            if ($name === '' || preg_match_all('/./us', $name) > MAX_NAME) {
                error_reply(400, 'a name is 1 to ' . MAX_NAME . ' characters');
                return;
            }
            $name = escape_text($name);
            $redis->hSet('php-chat:users', $session, $name);
            push_all(['type' => 'login', 'name' => $name, 'id' => $session]);
            reply(users($redis));
            return;
        case 'join':
        case 'leave':
            router($message['type'], ['channel' => "chat-channel-$channel", 'sessions' => [$session]]);
            return;
        case 'userlist':
            reply(users($redis));
            return;
        case 'msg':
            $text = (string) ($message['text'] ?? '');
            if (strlen($text) > MAX_TEXT) {
                error_reply(413, 'a message is at most ' . MAX_TEXT . ' bytes');
                return;
            }
            $name = $redis->hGet('php-chat:users', $session);
            if ($name === false) {
                error_reply(401, 'log in first');
                return;
            }
            $out = ['type' => 'msg', 'name' => $name, 'channel' => $channel, 'text' => escape_text($text), 'time' => gmdate('H:i')];
            if ($channel > 0) {
                router('publish', ['channel' => "chat-channel-$channel", 'data' => json_encode($out)]);
            } else {
                push_all($out);
            }
            return;
        default:
            error_reply(404, 'unknown message type "' . $message['type'] . '"');
    }
} catch (RuntimeException $e) {
    error_reply(503, $e->getMessage());
}
