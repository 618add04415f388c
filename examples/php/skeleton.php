<?php
// The smallest backend: one script for every event of every client. Run it
// under php-fpm (examples/php/fpm.conf) and point the gateway at it:
//   gateway --backend 127.0.0.1:9003,max_conns=4 --param SCRIPT_FILENAME=$PWD/examples/php/skeleton.php \
//           --param-file examples/php/params.conf
// Or try one event at a time with nginx/debug.conf (php-fpm's debug pool, the
// same params.conf), while the gateway runs:
//   curl 'http://127.0.0.1:8080/php/skeleton.php?SESSIONID=aaaaaaaaaaaaaaaa&EVENT=1'
//   curl -d hello 'http://127.0.0.1:8080/php/skeleton.php?SESSIONID=aaaaaaaaaaaaaaaa'
//   curl 'http://127.0.0.1:8080/php/skeleton.php?SESSIONID=aaaaaaaaaaaaaaaa&EVENT=2'
require_once __DIR__ . '/../../clients/php/Router.php';

$session = $_SERVER['SESSIONID'];  // the gateway's, never the client's
$router = new Router($_SERVER['ROUTER_HTTP'] ?? 'http://127.0.0.1:9011', $_SERVER['ROUTER_TOKEN'] ?? null);

switch ($_SERVER['EVENT'] ?? '') {
    case '1': // connect: answer with a non-200 Status to refuse the client
        $router->join('lobby', $session);
        echo json_encode(['type' => 'welcome', 'session' => $session]);
        break;
    case '':  // a message: the body is what the client sent; the reply goes back to it
        $text = file_get_contents('php://input');
        $router->publish('lobby', ['type' => 'said', 'session' => $session, 'text' => $text], except: [$session]);
        echo json_encode(['type' => 'ok']);
        break;
    case '2': // close: the client is gone and its channels with it; nobody reads a reply
        $router->publish('lobby', ['type' => 'left', 'session' => $session]);
        break;
}
