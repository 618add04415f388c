<?php
// A Pusher app's backend behind fk, under php-fpm: the same script answers
// Laravel Echo's channel authorization (POST /broadcasting/auth, through the
// gateway's --http-route, as a Laravel app's own route would) and the
// gateway's FastCGI events of Pusher clients (connect, close, and, with the
// app's client-events=backend flag, each client event before anyone sees it).
//
// Params: PUSHER_APP_KEY and PUSHER_APP_SECRET (static, --param), and
// EVENT_LOG, a file each event is appended to as a JSON line.
// The user is the X-User header: a demo; a real app takes its session's user.

$key = $_SERVER['PUSHER_APP_KEY'];
$secret = $_SERVER['PUSHER_APP_SECRET'];

function sign(string $secret, string $input): string {
    return hash_hmac('sha256', $input, $secret);
}

if (str_starts_with($_SERVER['REQUEST_URI'] ?? '', '/broadcasting/auth')) {
    $socket = $_POST['socket_id'] ?? '';
    $channel = $_POST['channel_name'] ?? '';
    $user = $_SERVER['HTTP_X_USER'] ?? '';
    if ($user === '' || str_starts_with($channel, 'private-user.') && $channel !== "private-user.$user") {
        http_response_code(403);
        exit;
    }
    header('Content-Type: application/json');
    if (str_starts_with($channel, 'presence-')) {
        $data = json_encode(['user_id' => $user, 'user_info' => ['id' => $user, 'name' => ucfirst($user)]]);
        echo json_encode(['auth' => "$key:" . sign($secret, "$socket:$channel:$data"), 'channel_data' => $data]);
    } else {
        // A forged signature for channels named so, as an attacker's would be.
        $as = str_contains($channel, 'forged') ? 'not-the-secret' : $secret;
        echo json_encode(['auth' => "$key:" . sign($as, "$socket:$channel")]);
    }
    exit;
}

$event = $_SERVER['EVENT'] ?? '';
$body = file_get_contents('php://input');
if (!empty($_SERVER['EVENT_LOG'])) {
    $line = ['event' => $event, 'socket' => $_SERVER['PUSHER_SOCKET_ID'] ?? '', 'app' => $_SERVER['PUSHER_APP_ID'] ?? '',
             'channel' => $_SERVER['CHANNEL'] ?? '', 'body' => $body];
    file_put_contents($_SERVER['EVENT_LOG'], json_encode($line) . "\n", FILE_APPEND | LOCK_EX);
}
if ($event === '8') {
    // A client event (a whisper): refused when it says "forbidden"; else
    // relayed as sent (an empty 2xx). A body would replace its data.
    $whisper = json_decode($body, true);
    if (str_contains(json_encode($whisper['data'] ?? null), 'forbidden')) {
        http_response_code(403);
    } else {
        http_response_code(204);
    }
}
