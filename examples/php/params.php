<?php
// A gateway backend in plain PHP: answers the connect event with what the
// gateway told it, and echoes each message back.
header('Content-Type: application/json');
$event = $_SERVER['EVENT'] ?? '';
if ($event === '1') {
    $keys = ['SESSIONID', 'EVENT', 'REMOTE_ADDR', 'REQUEST_URI', 'QUERY_STRING', 'HTTP_X_TEAM', 'ROUTER_HTTP'];
    $seen = [];
    foreach ($keys as $key) {
        $seen[$key] = $_SERVER[$key] ?? null;
    }
    echo json_encode(['connected' => $seen]);
} elseif (empty($event)) {
    echo json_encode(['echo' => file_get_contents('php://input'), 'session' => $_SERVER['SESSIONID']]);
}
