//! The game-login queue through the gateway, in process and in Redis with
//! two app processes acting as one.

use e2e::processes::{local, wait_for_port};
use e2e::{chat, free_port, queue, Proc, Redis, Stack, StackOptions};

fn queue_options() -> StackOptions {
    StackOptions {
        gateway_args: vec!["--http-route".into(), "/api/".into()],
        app_args: vec!["--queue-capacity".into(), "1".into(), "--operator-token".into(), queue::OPERATOR_TOKEN.into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_are_admitted_queued_and_moved_up() {
    let stack = Stack::start(queue_options());
    queue::scenario(&stack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_app_processes_sharing_redis_act_as_one() {
    let redis = Redis::start();
    let secret = ["--cookie-secret".to_owned(), "shared-between-apps".to_owned()];
    let second_app = local(free_port()).to_string();
    let mut options = queue_options();
    options.redis = Some(redis.url());
    options.app_args.extend(secret.clone());
    // Events and requests alternate between the two apps.
    let admin = free_port();
    options.gateway_args.extend([
        "--backend".to_owned(),
        second_app.clone(),
        "--admin".to_owned(),
        local(admin).to_string(),
    ]);
    let stack = Stack::start(options);
    let router = local(stack.router_port).to_string();
    let mut args = vec![
        "--listen".to_owned(),
        second_app.clone(),
        "--router".to_owned(),
        router,
        "--redis".to_owned(),
        redis.url(),
    ];
    args.extend(["--queue-capacity".to_owned(), "1".to_owned()]);
    args.extend(["--operator-token".to_owned(), queue::OPERATOR_TOKEN.to_owned()]);
    args.extend(secret);
    let _second_app = Proc::project("chat-app", &args, "chat-app-2");
    wait_for_port(second_app.rsplit(':').next().unwrap().parse().unwrap(), "second chat-app");

    chat::scenario(&stack.ws_url("/")).await;
    queue::scenario(&stack).await;
    let first_app = local(stack.app_port).to_string();
    for app in [first_app, second_app] {
        let sample = format!(r#"gateway_backend_connections{{pool="default",backend="{app}"}}"#);
        assert!(e2e::metric(admin, &sample) >= 1.0, "both apps served: {app}");
    }
}
