<?php
// A live auction room in plain PHP under php-fpm: presence (who is in the
// room), history (the last bids for whoever comes late) and subscribe (a
// client asks to watch a lot; this script decides). One script for every
// event, stateless: the router keeps the room, the session keeps its name.
//
//   router  --history presence-auction=20/3600
//   gateway --backend unix:/run/php/fk.sock,keep_conn=off --client-subscribe true \
//           --param SCRIPT_FILENAME=$PWD/examples/php/auction/app.php \
//           --param ROUTER_HTTP=http://127.0.0.1:9011 --page /auction=examples/php/auction/index.html \
//           --page /fk.js=clients/js/fk.js
// docs/PHP.md walks through it; e2e/tests/php_app.rs runs it in Chromium.
require_once __DIR__ . '/../../../clients/php/Router.php';

const ROOM = 'presence-auction';
const LOTS = ['lot-1', 'lot-2', 'lot-3'];

$session = $_SERVER['SESSIONID'];   // the gateway's: never trust the client for it
$name = $_SERVER['META_NAME'] ?? null;   // what this session's login reply set (X-Meta-Name)
$router = new Router($_SERVER['ROUTER_HTTP'] ?? 'http://127.0.0.1:9011');

function reply(array $message): void {
    header('Content-Type: application/json');
    echo json_encode($message);
}

switch ($_SERVER['EVENT'] ?? '') {
    case '1':   // connect: nothing to say until the client logs in
    case '2':   // close: the router takes the session out of the room itself
        break;

    case '5':   // a client asks to watch a lot: 204 lets it in, 403 does not
        http_response_code(in_array($_SERVER['CHANNEL'], LOTS, true) && $name !== null ? 204 : 403);
        break;

    case '':    // a message
        $message = json_decode(file_get_contents('php://input'), true);
        switch ($message['type'] ?? '') {
            case 'login':
                $name = trim((string) ($message['name'] ?? ''));
                if ($name === '' || strlen($name) > 32) {
                    reply(['type' => 'error', 'message' => 'a name is 1 to 32 characters']);
                    break;
                }
                // Remembered on the session: every later event brings META_NAME.
                header('X-Meta-Name: ' . rawurlencode($name));
                // The room's last bids first (history), then the live ones.
                $router->join(ROOM, $session, user: $name, info: ['name' => $name], history: true);
                reply(['type' => 'welcome', 'name' => $name, 'lots' => LOTS]);
                break;
            case 'bid':
                $amount = (int) ($message['amount'] ?? 0);
                if ($name === null || $amount <= 0) {
                    reply(['type' => 'error', 'message' => 'log in, then bid a positive amount']);
                    break;
                }
                $bid = ['type' => 'bid', 'by' => rawurldecode($name), 'amount' => $amount];
                $router->publish(ROOM, $bid);   // kept: a late joiner sees it
                if (!empty($message['lot'])) {
                    $router->publish((string) $message['lot'], $bid);   // its watchers only
                }
                break;
            default:
                reply(['type' => 'error', 'message' => 'login or bid']);
        }
        break;
}
