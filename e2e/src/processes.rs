use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on loopback for a server under test. Taken below the
/// kernel's ephemeral range (32768 and up), where test clients' own
/// connections could take it between our check and the server's bind, and
/// handed out once per test process from a random start.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20_000 + (std::process::id() % 1000) as u16 * 12,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(port < 32_768, "ran out of test ports");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The echo backend (examples/echo) on a free port, logging every event it
/// sees to `log` and answering the connect event with its params.
pub fn echo_backend(log: &std::path::Path) -> (Proc, String) {
    echo_backend_with(log, &["--report-connect"], "echo")
}

/// The echo backend with other flags, logging to `log`, named `name`.
pub fn echo_backend_with(log: &std::path::Path, flags: &[&str], name: &str) -> (Proc, String) {
    let port = free_port();
    let addr = local(port).to_string();
    let mut args = vec!["--listen", &addr, "--log", log.to_str().unwrap()];
    args.extend(flags);
    let proc = Proc::project("echo-app", &args, name);
    wait_for_port(port, "echo-app");
    (proc, addr)
}

/// A fresh, empty scratch file path under `target/e2e-logs/`.
pub fn scratch_file(name: &str) -> std::path::PathBuf {
    let dir = bin_dir().join("../e2e-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}-{name}", std::thread::current().name().unwrap_or("test").replace("::", "-")));
    let _ = std::fs::remove_file(&path);
    path
}

/// Waits until something accepts on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect_timeout(&local(port), Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The workspace's `target/debug` (or release) folder, next to this test binary.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(|deps| deps.parent()).unwrap().to_path_buf()
}

/// A child process, killed when dropped. Its output goes to a log file
/// under `target/e2e-logs/`, named after the test and the process.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
    /// Sent first when dropped, for servers whose workers outlive a killed
    /// master (nginx, php-fpm).
    stop_signal: Option<&'static str>,
}

impl Proc {
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(program: impl Into<PathBuf>, args: &[S], name: &str) -> Proc {
        let program = program.into();
        assert!(
            program.exists() || program.components().count() == 1,
            "{} is missing: build with `cargo build --workspace --bins` (the README's test command does)",
            program.display()
        );
        let logs = bin_dir().join("../e2e-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("test").replace("::", "-");
        let log = logs.join(format!("{test}-{name}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(&program)
            .args(args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        Proc { name: name.into(), child, log, stop_signal: None }
    }

    /// The process id, for a script that signals it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stopped with `signal` (then killed, if need be) when dropped.
    pub fn stopped_by(mut self, signal: &'static str) -> Proc {
        self.stop_signal = Some(signal);
        self
    }

    /// One of the workspace's binaries.
    pub fn project<S: AsRef<std::ffi::OsStr>>(binary: &str, args: &[S], name: &str) -> Proc {
        Proc::spawn(bin_dir().join(binary), args, name)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit by itself; whether it did in time.
    pub fn wait_exit(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Its resident memory now, in bytes (VmRSS).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("VmRSS in kB") * 1024
    }

    pub fn signal(&self, signal: &str) {
        Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status().unwrap();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(signal) = self.stop_signal {
            self.signal(signal);
            self.wait_exit(Duration::from_secs(5));
        }
        self.kill();
    }
}

/// `redis-server` on loopback `port`, keeping nothing on disk, with `more`
/// flags; listening when it returns. Each runs in a folder of its own: a
/// replica's full sync writes an RDB file there, which a Redis started in a
/// shared folder would load.
fn redis_server(port: u16, more: &[&str], name: &str) -> Proc {
    let (port_arg, dir) = (port.to_string(), bin_dir().join(format!("../e2e-logs/redis-{port}")));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let own = [
        "--port",
        &port_arg,
        "--save",
        "",
        "--appendonly",
        "no",
        "--bind",
        "127.0.0.1",
        "--dir",
        dir.to_str().unwrap(),
    ];
    let args = [&own[..], more].concat();
    let proc = Proc::spawn("redis-server", &args, name);
    wait_for_port(port, name);
    proc
}

/// A throwaway Redis on a free port that keeps nothing on disk.
pub struct Redis {
    pub port: u16,
    proc: Proc,
}

impl Redis {
    pub fn start() -> Redis {
        let port = free_port();
        Redis { port, proc: Redis::spawn(port, "redis") }
    }

    fn spawn(port: u16, name: &str) -> Proc {
        redis_server(port, &[], name)
    }

    /// Kills it (an outage); `restart_empty` brings it back.
    pub fn stop(&mut self) {
        self.proc.kill();
    }

    /// Stops it where it stands (SIGSTOP): connections stay open, nothing
    /// answers, as a master that hangs; `resume` lets it go on.
    pub fn pause(&self) {
        self.proc.signal("STOP");
    }

    pub fn resume(&self) {
        self.proc.signal("CONT");
    }

    /// A new, empty Redis on the same port, as after a crash without persistence.
    pub fn restart_empty(&mut self) {
        self.proc.kill();
        self.proc = Redis::spawn(self.port, "redis-again");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// A master, one replica and three Sentinels watching them (quorum 2,
/// down after 1 s), as Debian's redis-server runs them, on free ports.
pub struct SentinelGroup {
    pub master_port: u16,
    pub replica_port: u16,
    pub sentinel_ports: Vec<u16>,
    procs: Vec<Proc>,
}

/// The master's name the Sentinels know.
pub const SENTINEL_MASTER: &str = "mymaster";

impl SentinelGroup {
    pub fn start() -> SentinelGroup {
        let (master_port, replica_port) = (free_port(), free_port());
        let master = Redis::spawn(master_port, "redis-master");
        let master_arg = master_port.to_string();
        let replica = redis_server(replica_port, &["--replicaof", "127.0.0.1", &master_arg], "redis-replica");
        // Beside the logs: the Sentinels rewrite their config files.
        let dir = bin_dir().join(format!("../e2e-logs/sentinels-{master_port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut procs = vec![master, replica];
        let mut sentinel_ports = Vec::new();
        for i in 0..3 {
            let port = free_port();
            let conf = dir.join(format!("sentinel-{i}.conf"));
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\nsentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} 1000\nsentinel failover-timeout {SENTINEL_MASTER} 5000\n",
                dir = dir.display()
            );
            std::fs::write(&conf, text).unwrap();
            procs.push(Proc::spawn("redis-server", &[conf.to_str().unwrap(), "--sentinel"], &format!("sentinel-{i}")));
            wait_for_port(port, "a sentinel");
            sentinel_ports.push(port);
        }
        SentinelGroup { master_port, replica_port, sentinel_ports, procs }
    }

    /// The URL the router and chat-app take.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinel_ports.iter().map(|port| local(*port).to_string()).collect();
        format!("redis+sentinel://{}/{SENTINEL_MASTER}", hosts.join(","))
    }

    /// The master, killed without a word (`kill -9`).
    pub fn kill_master(&mut self) {
        self.procs[0].kill();
    }

    /// The port of the node the Sentinels name master now.
    pub fn master_now(&self) -> Option<u16> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.sentinel_ports[0].to_string(), "SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().nth(1)?.trim().parse().ok()
    }

    /// Whether the Sentinels know the replica (they find it through the master).
    pub fn replica_known(&self) -> bool {
        let out = Command::new("redis-cli")
            .args(["-p", &self.sentinel_ports[0].to_string(), "SENTINEL", "replicas", SENTINEL_MASTER])
            .output();
        out.is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains(&self.replica_port.to_string()))
    }
}

/// A Redis Cluster of three masters on free ports, made with
/// `redis-cli --cluster create`, as an operator makes one.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    procs: Vec<Proc>,
}

/// A master of a [`RedisCluster`], as `CLUSTER NODES` lists it.
struct ClusterMaster {
    id: String,
    port: u16,
    ranges: Vec<(u16, u16)>,
}

/// `redis-cli -p PORT ARGS...`, its output.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli").arg("-p").arg(port.to_string()).args(args).output().expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        RedisCluster::start_with(0)
    }

    /// Three masters and `replicas` replicas of each.
    pub fn start_with(replicas: usize) -> RedisCluster {
        let ports: Vec<u16> = (0..3 * (1 + replicas)).map(|_| free_port()).collect();
        let dir = bin_dir().join(format!("../e2e-logs/cluster-{}", ports[0]));
        std::fs::create_dir_all(&dir).unwrap();
        let mut procs = Vec::new();
        for port in &ports {
            let conf = dir.join(format!("nodes-{port}.conf"));
            // The bus port defaults to the port plus 10,000: in the range
            // the kernel draws client ports from, so it is picked here too.
            let bus = free_port().to_string();
            let cluster = [
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                &bus,
                "--cluster-config-file",
                conf.to_str().unwrap(),
                "--cluster-node-timeout",
                "2000",
            ];
            procs.push(redis_server(*port, &cluster, &format!("cluster-{port}")));
        }
        let nodes: Vec<String> = ports.iter().map(|port| local(*port).to_string()).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stdout));
        let deadline = Instant::now() + Duration::from_secs(15);
        while !ports.iter().all(|port| redis_cli(*port, &["CLUSTER", "INFO"]).contains("cluster_state:ok")) {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        let replicas_known =
            || replicas == 0 || redis_cli(ports[0], &["CLUSTER", "NODES"]).matches("slave").count() == 3 * replicas;
        while !replicas_known() {
            assert!(Instant::now() < deadline, "the replicas never joined");
            std::thread::sleep(Duration::from_millis(100));
        }
        RedisCluster { ports, procs }
    }

    /// The node at `port`, killed without a word (`kill -9`).
    pub fn kill(&mut self, port: u16) {
        let at = self.ports.iter().position(|p| *p == port).expect("a node of the cluster");
        self.procs[at].kill();
    }

    /// The port of the replica of the master at `port`.
    pub fn replica_of(&self, port: u16) -> u16 {
        let nodes = self.nodes();
        let master = nodes.lines().find(|line| line.contains(&format!(":{port}@"))).unwrap();
        let master_id = master.split_whitespace().next().unwrap();
        let replica = nodes.lines().find(|line| line.contains("slave") && line.contains(master_id)).unwrap();
        replica.split_whitespace().nth(1).unwrap().split(['@', ':']).nth(1).unwrap().parse().unwrap()
    }

    /// The URL the router and chat-app take.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.ports.iter().map(|port| local(*port).to_string()).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// Each master: its node id, port and the slot ranges it serves.
    /// `CLUSTER NODES`, as a node still up answers it.
    fn nodes(&self) -> String {
        self.ports.iter().map(|port| redis_cli(*port, &["CLUSTER", "NODES"])).find(|nodes| !nodes.is_empty()).unwrap()
    }

    fn masters(&self) -> Vec<ClusterMaster> {
        self.nodes()
            .lines()
            .filter(|line| line.contains("master") && !line.contains("fail"))
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let port = fields[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
                let ranges = fields[8..]
                    .iter()
                    .filter(|range| !range.starts_with('['))
                    .map(|range| match range.split_once('-') {
                        Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
                        None => (range.parse().unwrap(), range.parse().unwrap()),
                    })
                    .collect();
                ClusterMaster { id: fields[0].to_owned(), port, ranges }
            })
            .collect()
    }

    /// The ports of the masters serving now.
    pub fn master_ports(&self) -> Vec<u16> {
        self.masters().iter().map(|master| master.port).collect()
    }

    /// Each key that matches `pattern` (as `SCAN MATCH` takes it), with
    /// the port of the master that holds it.
    pub fn keys(&self, pattern: &str) -> Vec<(u16, String)> {
        let found = self.master_ports().into_iter().flat_map(|port| {
            let keys = redis_cli(port, &["--scan", "--pattern", pattern]);
            keys.lines().map(|key| (port, key.to_owned())).collect::<Vec<_>>()
        });
        found.collect()
    }

    /// The slot of `key`.
    pub fn slot(&self, key: &str) -> u16 {
        redis_cli(self.ports[0], &["CLUSTER", "KEYSLOT", key]).trim().parse().unwrap()
    }

    /// The port of the master that serves `slot`.
    pub fn owner(&self, slot: u16) -> u16 {
        self.serving(slot).expect("a master serves the slot")
    }

    /// The port of the master that serves `slot`, if one does (none while
    /// the cluster fails over).
    pub fn serving(&self, slot: u16) -> Option<u16> {
        let masters = self.masters();
        masters.iter().find(|master| master.ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot))).map(|m| m.port)
    }

    /// Moves every slot of the master that serves `slot` to another one,
    /// with `redis-cli --cluster reshard`, two keys at a time; the new
    /// owner's port.
    pub fn reshard_away(&self, slot: u16) -> u16 {
        let masters = self.masters();
        let owner = self.owner(slot);
        let source = masters.iter().find(|master| master.port == owner).unwrap();
        let target = masters.iter().find(|master| master.id != source.id).unwrap();
        let slots: u32 = source.ranges.iter().map(|(a, b)| u32::from(b - a) + 1).sum();
        let resharded = Command::new("redis-cli")
            .args(["--cluster", "reshard", &local(owner).to_string()])
            .args(["--cluster-from", &source.id, "--cluster-to", &target.id, "--cluster-slots", &slots.to_string()])
            .args(["--cluster-yes", "--cluster-pipeline", "2"])
            .output()
            .expect("redis-cli --cluster reshard");
        assert!(resharded.status.success(), "{}", String::from_utf8_lossy(&resharded.stdout));
        target.port
    }
}

#[derive(Default)]
pub struct StackOptions {
    /// Membership and users in this Redis; in memory without it.
    pub redis: Option<String>,
    /// Point the gateway at this backend instead of the chat-app.
    pub backend: Option<String>,
    /// More gateway flags.
    pub gateway_args: Vec<String>,
    /// The router's --token, given to the chat-app too.
    pub token: Option<String>,
    /// The router's --gateway-token, given to the gateway.
    pub gateway_token: Option<String>,
    /// More chat-app flags.
    pub app_args: Vec<String>,
    /// More router flags.
    pub router_args: Vec<String>,
}

/// router + chat-app + gateway, as three processes on free ports.
pub struct Stack {
    pub token: Option<String>,
    pub gateway_port: u16,
    pub router_port: u16,
    pub router_http_port: u16,
    pub app_port: u16,
    pub procs: Vec<Proc>,
}

impl Stack {
    pub fn start(options: StackOptions) -> Stack {
        let (router_port, router_http_port, app_port, gateway_port) =
            (free_port(), free_port(), free_port(), free_port());
        let router_addr = local(router_port).to_string();
        let app_addr = local(app_port).to_string();
        let mut router_args =
            vec!["--listen".to_owned(), router_addr.clone(), "--http".to_owned(), local(router_http_port).to_string()];
        let mut app_args = vec!["--listen".to_owned(), app_addr.clone(), "--router".to_owned(), router_addr.clone()];
        if let Some(redis) = &options.redis {
            router_args.extend(["--redis".to_owned(), redis.clone()]);
            app_args.extend(["--redis".to_owned(), redis.clone()]);
        }
        let backend = options.backend.unwrap_or(app_addr);
        let pages = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
        let mut gateway_args = vec![
            "--listen".to_owned(),
            local(gateway_port).to_string(),
            "--backend".to_owned(),
            backend,
            "--router".to_owned(),
            router_addr,
            "--page".to_owned(),
            format!("/={pages}/chat/index.html"),
            "--page".to_owned(),
            format!("/queue={pages}/queue/index.html"),
            "--page".to_owned(),
            format!("/fk.js={pages}/../clients/js/fk.js"),
        ];

        // `{router_http}` in a gateway arg is the router's HTTP address (for a
        // backend's static params).
        let router_http = format!("http://{}", local(router_http_port));
        gateway_args.extend(options.gateway_args.iter().map(|a| a.replace("{router_http}", &router_http)));
        app_args.extend(options.app_args.iter().cloned());
        router_args.extend(options.router_args.iter().cloned());
        if let Some(token) = &options.token {
            router_args.extend(["--token".to_owned(), token.clone()]);
            app_args.extend(["--router-token".to_owned(), token.clone()]);
        }
        if let Some(token) = &options.gateway_token {
            router_args.extend(["--gateway-token".to_owned(), token.clone()]);
            gateway_args.extend(["--router-token".to_owned(), token.clone()]);
        }
        let router = Proc::project("router", &router_args, "router");
        wait_for_port(router_port, "router");
        let app = Proc::project("chat-app", &app_args, "chat-app");
        wait_for_port(app_port, "chat-app");
        let gateway = Proc::project("gateway", &gateway_args, "gateway");
        wait_for_port(gateway_port, "gateway");
        let stack = Stack {
            token: options.token,
            gateway_port,
            router_port,
            router_http_port,
            app_port,
            procs: vec![router, app, gateway],
        };
        stack.wait_for_gateways(1);
        stack
    }

    /// The single demo binary on its fixed default ports.
    pub fn demo() -> Stack {
        let demo = Proc::project::<&str>("demo", &[], "demo");
        let stack = Stack {
            token: None,
            gateway_port: 9005,
            router_port: 9010,
            router_http_port: 9011,
            app_port: 9001,
            procs: vec![demo],
        };
        wait_for_port(9005, "demo gateway");
        stack.wait_for_gateways(1);
        stack
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://127.0.0.1:{}{path}", self.gateway_port)
    }

    /// Waits until the router's INFO lists `n` linked gateways.
    pub fn wait_for_gateways(&self, n: usize) {
        wait_for_info(self.router_http_port, self.token.as_deref(), &format!("{n} gateway(s)"), |info| {
            info["gateways"].as_array().map(Vec::len) == Some(n)
        });
    }

    /// Waits until the router's INFO counts `n` client sessions: a
    /// session is there once its gateway has told the router of it,
    /// which may come after the client's handshake.
    pub fn wait_for_clients(&self, n: u64) {
        let token = self.token.as_deref();
        wait_for_info(self.router_http_port, token, &format!("{n} client(s)"), |info| {
            info["clients"].as_u64() == Some(n)
        });
    }
}

/// Waits until the token-less router on HTTP port `http` has `n` gateways linked.
pub fn wait_for_gateways_on(http: u16, n: usize) {
    wait_for_info(http, None, &format!("{n} gateway(s)"), |info| info["gateways"].as_array().map(Vec::len) == Some(n));
}

fn wait_for_info(http: u16, token: Option<&str>, what: &str, seen: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok((200, body)) = crate::http::request_with_token(http, "GET", "/v1/info", "", token) {
            if seen(&serde_json::from_str(&body).unwrap()) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "router on {http} never saw {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The events an echo backend logged (see [`echo_backend`]), once there
/// are at least `n`. Only whole lines count.
pub fn backend_events(log: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        let events: Vec<serde_json::Value> = whole.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        if events.len() >= n {
            return events;
        }
        assert!(Instant::now() < deadline, "backend saw {} of {n} events: {text}", events.len());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stack with the echo backend (run with `echo_flags`) behind the
/// gateway (run with `gateway_args`); returns the backend's event log too.
pub fn echo_stack(gateway_args: &[&str], echo_flags: &[&str]) -> (Stack, Proc, std::path::PathBuf) {
    let log = scratch_file("echo-events.jsonl");
    let (echo, echo_addr) = echo_backend_with(&log, echo_flags, "echo");
    let gateway_args = gateway_args.iter().map(|a| a.to_string()).collect();
    let stack = Stack::start(StackOptions { backend: Some(echo_addr), gateway_args, ..Default::default() });
    (stack, echo, log)
}

/// A gateway of a [`cluster`]: its WebSocket URL, port and admin port.
pub struct ClusterGateway {
    pub url: String,
    pub port: u16,
    pub admin: u16,
}

/// A router (run with `router_args`), an echo backend (with `echo_flags`)
/// and `gateways` gateways of one cluster (with `gateway_args`, a shared
/// resume secret and an admin listener each), each linked to the router.
/// The gateways are the processes named `gateway-0`, `gateway-1`, ...
pub fn cluster(
    router_args: &[&str],
    gateways: usize,
    gateway_args: &[&str],
    echo_flags: &[&str],
) -> (Stack, Vec<ClusterGateway>) {
    let (stack, _, members) = routed_cluster(1, router_args, gateways, gateway_args, echo_flags);
    (stack, members)
}

/// A [`cluster`] of `routers` routers (named `router`, `router-1`, ...,
/// each run with `router_args`), every gateway linked to each; the HTTP
/// ports of the routers, the stack's own first.
pub fn routed_cluster(
    routers: usize,
    router_args: &[&str],
    gateways: usize,
    gateway_args: &[&str],
    echo_flags: &[&str],
) -> (Stack, Vec<u16>, Vec<ClusterGateway>) {
    let mut procs = Vec::new();
    let (mut links, mut ports, mut http_ports) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..routers {
        let (port, http_port) = (free_port(), free_port());
        let (listen, http) = (local(port).to_string(), local(http_port).to_string());
        let args: Vec<&str> =
            ["--listen", &listen, "--http", &http].into_iter().chain(router_args.iter().copied()).collect();
        let name = if i == 0 { "router".to_owned() } else { format!("router-{i}") };
        procs.push(Proc::project("router", &args, &name));
        wait_for_port(port, "router");
        links.extend(["--router".to_owned(), listen]);
        ports.push(port);
        http_ports.push(http_port);
    }
    let echo_port = free_port();
    let echo_addr = local(echo_port).to_string();
    let echo_args: Vec<&str> = ["--listen", &echo_addr].into_iter().chain(echo_flags.iter().copied()).collect();
    procs.push(Proc::project("echo-app", &echo_args, "echo"));
    wait_for_port(echo_port, "echo-app");
    let mut members = Vec::new();
    for i in 0..gateways {
        let (port, admin) = (free_port(), free_port());
        let (listen, admin_addr) = (local(port).to_string(), local(admin).to_string());
        let own = ["--listen", &listen, "--admin", &admin_addr, "--backend", &echo_addr];
        let args: Vec<&str> = (own.into_iter().chain(links.iter().map(String::as_str)))
            .chain(["--resume-secret", "cluster"])
            .chain(gateway_args.iter().copied())
            .collect();
        procs.push(Proc::project("gateway", &args, &format!("gateway-{i}")));
        wait_for_port(port, "gateway");
        members.push(ClusterGateway { url: format!("ws://{listen}/"), port, admin });
    }
    let stack = Stack {
        token: None,
        gateway_port: 0,
        router_port: ports[0],
        router_http_port: http_ports[0],
        app_port: echo_port,
        procs,
    };
    for http in &http_ports {
        wait_for_gateways_on(*http, gateways);
    }
    (stack, http_ports, members)
}

impl Stack {
    /// The process named `name`.
    pub fn proc(&self, name: &str) -> &Proc {
        self.procs.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no process {name}"))
    }

    pub fn proc_mut(&mut self, name: &str) -> &mut Proc {
        self.procs.iter_mut().find(|p| p.name == name).unwrap_or_else(|| panic!("no process {name}"))
    }
}

/// Polls `check` until it holds or `within` passes; whether it held.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !check() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// One sample from a Prometheus text page, e.g. `name{label="x"}`.
pub fn metric(admin_port: u16, sample: &str) -> f64 {
    let (status, page) = crate::http::request(admin_port, "GET", "/metrics", "").expect("admin listener");
    assert_eq!(status, 200);
    page.lines()
        .find_map(|line| line.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in\n{page}"))
}

pub fn php_fpm_binary() -> std::path::PathBuf {
    let found = std::fs::read_dir("/usr/sbin")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("php-fpm")));
    found.expect("php-fpm is not installed (the README's test command installs it)")
}

/// php-fpm on `listen` (HOST:PORT or a socket path), running in the
/// foreground, its config and logs in `dir`.
pub fn php_fpm(listen: &str, dir: &std::path::Path) -> Proc {
    php_fpm_with_children(listen, dir, 2)
}

/// php-fpm with `children` workers on a free TCP port, its config and logs
/// in `target/e2e-logs/<name>/`; with its address and that folder.
pub fn php_fpm_on_a_port(name: &str, children: usize) -> (Proc, String, PathBuf) {
    let dir = bin_dir().join("../e2e-logs").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let addr = local(port).to_string();
    let fpm = php_fpm_with_children(&addr, &dir, children);
    wait_for_port(port, "php-fpm");
    (fpm, addr, dir)
}

fn php_fpm_with_children(listen: &str, dir: &std::path::Path, children: usize) -> Proc {
    php_fpm_with(listen, dir, &format!("pm = static\npm.max_children = {children}"))
}

/// php-fpm with `pm = ondemand` and `children` workers at most on a free
/// TCP port, as [`php_fpm_on_a_port`]: workers start as requests come and
/// go after 10 s idle.
pub fn php_fpm_ondemand_on_a_port(name: &str, children: usize) -> (Proc, String, PathBuf) {
    let dir = bin_dir().join("../e2e-logs").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let addr = local(free_port()).to_string();
    let pm = format!("pm = ondemand\npm.max_children = {children}\npm.process_idle_timeout = 10s");
    let fpm = php_fpm_with(&addr, &dir, &pm);
    wait_for_port(addr.rsplit(':').next().unwrap().parse().unwrap(), "php-fpm");
    (fpm, addr, dir)
}

fn php_fpm_with(listen: &str, dir: &std::path::Path, pm: &str) -> Proc {
    let conf = dir.join("fpm.conf");
    let config = format!(
        "[global]\nerror_log = {}\ndaemonize = no\n[www]\nuser = root\ngroup = root\nlisten = {listen}\n{pm}\nclear_env = no\n",
        dir.join("fpm-error.log").display()
    );
    std::fs::write(&conf, config).unwrap();
    Proc::spawn(php_fpm_binary(), &["-y", conf.to_str().unwrap(), "-F", "-R"], "php-fpm").stopped_by("TERM")
}
