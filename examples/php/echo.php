<?php
// The smallest echo: each message back to its client as it came; connect
// and close answer nothing. What bench/php-fpm.sh measures php-fpm with.
if (empty($_SERVER['EVENT'])) {
    header('Content-Type: text/plain');
    echo file_get_contents('php://input');
}
