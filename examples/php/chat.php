<?php
// fooking's chat protocol as a plain PHP backend under php-fpm: the same
// messages and replies as chat-app (docs/PROTOCOL.md, "The chat protocol").
// State (who is online) lives in Redis; pushes go through the router's
// HTTP API with clients/php/Router.php. The gateway passes the addresses as
// static params (ROUTER_TOKEN too, when the router has one):
//   gateway --param SCRIPT_FILENAME=/srv/chat.php --param ROUTER_HTTP=http://127.0.0.1:9011 \
//           --param REDIS_HOST=127.0.0.1 --param REDIS_PORT=6379

require_once __DIR__ . '/../../clients/php/Router.php';

const MAX_NAME = 32;
const MAX_TEXT = 4096;

header('Content-Type: application/json');

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
$router = new Router($_SERVER['ROUTER_HTTP'] ?? 'http://127.0.0.1:9011', $_SERVER['ROUTER_TOKEN'] ?? null);
$redis = new Redis();
$redis->connect($_SERVER['REDIS_HOST'] ?? '127.0.0.1', (int) ($_SERVER['REDIS_PORT'] ?? 6379), 2.0);

try {
    if ($event === '2') {
        $name = $redis->hGet('php-chat:users', $session);
        if ($name !== false) {
            $redis->hDel('php-chat:users', $session);
            $router->broadcast(['type' => 'close', 'name' => $name, 'id' => $session]);
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
            $router->broadcast(['type' => 'login', 'name' => $name, 'id' => $session]);
            reply(users($redis));
            return;
        case 'join':
        case 'leave':
            $message['type'] === 'join'
                ? $router->join("chat-channel-$channel", $session)
                : $router->leave("chat-channel-$channel", $session);
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
                $router->publish("chat-channel-$channel", $out);
            } else {
                $router->broadcast($out);
            }
            return;
        default:
            error_reply(404, 'unknown message type "' . $message['type'] . '"');
    }
} catch (RouterException | RedisException $e) {
    error_log("chat.php: {$e->getMessage()}");
    error_reply(503, 'unavailable');
}
