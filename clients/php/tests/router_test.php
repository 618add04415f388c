<?php
// Router.php against a real router: e2e/tests/router_clients.rs starts the
// router, holds two WebSocket clients (SESSION_A, SESSION_B) and checks
// what they receive; this script checks every call's result and error.
//   ROUTER_URL=http://127.0.0.1:9011 ROUTER_TOKEN=... SESSION_A=... SESSION_B=... php router_test.php

declare(strict_types=1);
require_once __DIR__ . '/../Router.php';

function check(bool $ok, string $what, mixed $seen = null): void
{
    if (!$ok) {
        fwrite(STDERR, "FAILED: $what" . ($seen === null ? '' : ': ' . json_encode($seen)) . "\n");
        exit(1);
    }
}

function throws(callable $call, int $status, string $code): void
{
    try {
        $call();
    } catch (RouterException $e) {
        check($e->status === $status && $e->errorCode === $code, "expected $status $code", [$e->status, $e->errorCode, $e->getMessage()]);
        return;
    }
    check(false, "expected a RouterException $status $code");
}

[$url, $token, $a, $b] = [getenv('ROUTER_URL'), getenv('ROUTER_TOKEN'), getenv('SESSION_A'), getenv('SESSION_B')];
$router = new Router($url, $token);

throws(fn() => (new Router($url, 'wrong'))->count('auction'), 401, 'unauthorized');
throws(fn() => (new Router('http://127.0.0.1:1', $token, 1.0))->count('auction'), 0, 'unreachable');
throws(fn() => $router->publish('', 'x'), 400, 'bad_request');
throws(fn() => $router->send(['not-a-session'], 'x'), 400, 'bad_request');

check($router->join('auction', [$a, $b]) === ['sessions' => 2], 'join');
$both = [$a, $b];
sort($both);
check($router->members('auction') === $both, 'members', $router->members('auction'));
check($router->count('auction') === 2, 'count');
check($router->channels($a) === ['auction'], 'channels');

check($router->publish('auction', ['type' => 'bid', 'amount' => 120])['sessions'] === 2, 'publish JSON');
check($router->publish('auction', 'not to a', except: [$a])['sessions'] === 1, 'publish_except');
check($router->send($a, 'to a')['sessions'] === 1, 'send');
check($router->send($b, Router::binary("\x00\x01\xff"))['sessions'] === 1, 'send binary');
check($router->bind($a, 'u42') === ['sessions' => 1], 'bind');
check($router->sendUser('u42', 'to user 42')['sessions'] === 1, 'send_user');
$online = $router->online([$a, 'ffffffffffffffff'], ['u42', 'nobody']);
check($online === ['sessions' => [$a], 'users' => ['u42']], 'online', $online);

$results = $router->batch()->leave('auction', $b)->publish('auction', 'only a')->count('auction')->run();
check(count($results) === 3 && $results[0] === ['sessions' => 1] && $results[2] === ['count' => 1], 'batch', $results);
check($router->batch()->run() === [], 'an empty batch sends nothing');

// A presence channel: $a joins as ann, and gets the member list.
check($router->join('presence-auction', $a, user: 'ann', info: ['paddle' => 7]) === ['sessions' => 1], 'presence join');
$listed = $router->presence('presence-auction');
check($listed === ['count' => 1, 'members' => [['session' => $a, 'user' => 'ann', 'info' => ['paddle' => 7], 'online' => true]]], 'presence', $listed);
check($router->history('auction') === ['entries' => []], 'history of a channel that keeps none');
check($router->leave('presence-auction', $a) === ['sessions' => 1], 'presence leave');
$since = $router->join('quiet', $b, since: '1');
check($since === ['sessions' => 1, 'recovered' => false], 'join since an offset of a channel that keeps none', $since);
check($router->leave('quiet', $b) === ['sessions' => 1], 'leave quiet');

// Every call above after the first went over one kept-alive connection.
$curl = (new ReflectionProperty(Router::class, 'curl'))->getValue($router);
$router->count('auction');
check(curl_getinfo($curl, CURLINFO_NUM_CONNECTS) === 0, 'keep-alive: no new connection', curl_getinfo($curl, CURLINFO_NUM_CONNECTS));

echo "ok\n";
