<?php
// A slow backend for the close-event test: connect and messages take
// 300 ms, and every event that ran to its end is logged, one line each.
$session = $_SERVER['SESSIONID'] ?? '';
$event = $_SERVER['EVENT'] ?? '';
$log = $_SERVER['EVENT_LOG'];
if ($event === '2') {
    file_put_contents($log, "close $session\n", FILE_APPEND | LOCK_EX);
    return;
}
usleep(300000);
$kind = $event === '1' ? 'connect' : 'message';
file_put_contents($log, "$kind $session\n", FILE_APPEND | LOCK_EX);
echo $kind === 'connect' ? 'connected' : 'echo ' . file_get_contents('php://input');
