<?php
// A backend written for fooking: it sets Content-Length on every path, the
// empty connect and close replies included, and picks its reply out of a
// larger buffer with Content-Offset. "fatal" dies as PHP does on a fatal
// error (500, empty body); "log" writes to PHP's error log (the gateway's
// STDERR lines).
$event = $_SERVER['EVENT'] ?? '';
$input = file_get_contents('php://input');
$reply = '';
if ($event === '' || $event === '0') {
    if ($input === 'fatal') {
        http_response_code(500);
        exit;
    }
    if ($input === 'log') {
        error_log('fooking-style backend logged this');
    }
    if ($input === 'offset') {
        $buffer = '[[' . 'picked' . ']]';
        header('Content-Offset: 2');
        header('Content-Length: 6');
        echo $buffer;
        exit;
    }
    if ($input === 'from-the-end') {
        header('Content-Offset: -8');
        header('Content-Length: 6');
        echo 'xxxxxxxxtail-6!!';
        exit;
    }
    if ($input !== 'quiet') {
        $reply = 'echo ' . $input;
    }
}
header('Content-Length: ' . strlen($reply));
echo $reply;
