//! examples/php/auction/, the PHP app docs/PHP.md walks through, under
//! php-fpm (`pm = ondemand`, a connection per event) in Chromium: two
//! users, presence, history for the late one, a subscribe allowed and one
//! refused, bids live.

use std::path::Path;

use e2e::browser::run_page_test;
use e2e::{Stack, StackOptions};

#[test]
fn the_php_auction_app_in_chromium() {
    let (_fpm, fpm_addr, _dir) = e2e::processes::php_fpm_ondemand_on_a_port("php-auction", 4);
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/php/auction").canonicalize().unwrap();
    let gateway_args = vec![
        "--client-subscribe".to_owned(),
        "true".to_owned(),
        "--param".to_owned(),
        format!("SCRIPT_FILENAME={}", app.join("app.php").display()),
        "--param".to_owned(),
        "ROUTER_HTTP={router_http}".to_owned(),
        "--page".to_owned(),
        format!("/auction={}", app.join("index.html").display()),
    ];
    let stack = Stack::start(StackOptions {
        backend: Some(format!("{fpm_addr},keep_conn=off")),
        gateway_args,
        router_args: vec!["--history".into(), "presence-auction=20/3600".into()],
        ..Default::default()
    });
    let url = stack.ws_url("/auction").replace("ws://", "http://");
    run_page_test("php_app.mjs", &url, "php-auction.png", &[]);
}
