//! An SSE client as a user debugging one would run it: `curl -N`, its
//! stream read as a browser's `EventSource` would (the gateway's own
//! parser, `gateway::front::sse::codec`), and its posts as curl's.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub use gateway::front::sse::codec::Parsed;
use serde_json::Value;

pub struct SseClient {
    child: Child,
    events: mpsc::Receiver<Parsed>,
    port: u16,
    /// The stream's path, where posts go (`PATH/send`, `PATH/close`).
    path: String,
    /// The stream's session event.
    pub session: Value,
    /// The id of the last event that had one, as a browser keeps it.
    pub last_event_id: Option<String>,
}

/// How long an event may take to come.
const WAIT: Duration = Duration::from_secs(10);

impl SseClient {
    /// Opens `path` (its query too) with `headers`: the client once its
    /// session event came, or the refusal's status and body.
    pub fn open(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<SseClient, (u16, String)> {
        let mut args = vec!["-sN".to_owned(), "-i".to_owned(), "-H".to_owned(), "Accept: text/event-stream".to_owned()];
        for (name, value) in headers {
            args.extend(["-H".to_owned(), format!("{name}: {value}")]);
        }
        args.push(format!("http://127.0.0.1:{port}{path}"));
        let mut child =
            Command::new("curl").args(&args).stdout(Stdio::piped()).spawn().expect("curl is installed by test.sh");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let status = read_head(&mut stdout);
        if status != 200 {
            let mut body = String::new();
            let _ = stdout.read_to_string(&mut body);
            let _ = child.wait();
            return Err((status, body));
        }
        let (sender, events) = mpsc::channel();
        std::thread::spawn(move || read_events(stdout, sender));
        let path = path.split('?').next().unwrap().trim_end_matches('/').to_owned();
        let mut client = SseClient { child, events, port, path, session: Value::Null, last_event_id: None };
        let first = client.next_event().expect("a session event");
        assert_eq!(first.event, "session", "the stream begins with its session event: {first:?}");
        client.last_event_id = first.id.clone();
        client.session = serde_json::from_str(&first.data).unwrap();
        Ok(client)
    }

    pub fn id(&self) -> &str {
        self.session["id"].as_str().unwrap()
    }

    pub fn send_token(&self) -> &str {
        self.session["send"].as_str().unwrap()
    }

    /// The next event, message or not; none if the stream ends or is silent.
    pub fn next_event(&mut self) -> Option<Parsed> {
        let event = self.events.recv_timeout(WAIT).ok()?;
        if event.id.is_some() {
            self.last_event_id = event.id.clone();
        }
        Some(event)
    }

    /// The next message's text (a session event in between is taken in).
    pub fn recv(&mut self) -> String {
        loop {
            let event = self.next_event().expect("an event within 10 s");
            if event.event == "session" {
                self.session = serde_json::from_str(&event.data).unwrap();
                continue;
            }
            let (data, _) = event.message().unwrap_or_else(|| panic!("a message, not {event:?}"));
            return String::from_utf8(data).unwrap();
        }
    }

    pub fn recv_json(&mut self) -> Value {
        serde_json::from_str(&self.recv()).unwrap()
    }

    /// Waits for the stream's close event: its code and reason.
    pub fn expect_close(&mut self) -> (u64, String) {
        loop {
            let event = self.next_event().expect("a close event within 10 s");
            if event.event == "close" {
                let close: Value = serde_json::from_str(&event.data).unwrap();
                return (close["code"].as_u64().unwrap(), close["reason"].as_str().unwrap().to_owned());
            }
        }
    }

    /// Posts a text message as curl would: the status.
    pub fn send(&self, text: &str) -> u16 {
        post(self.port, &format!("{}/send", self.path), self.send_token(), "text/plain", text)
    }

    /// Ends the session, as a WebSocket client's close frame would.
    pub fn close_session(&self) -> u16 {
        post(self.port, &format!("{}/close", self.path), self.send_token(), "text/plain", "")
    }

    /// Drops the connection without a word, as a client that vanishes.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl -X POST` with a bearer token: the status.
pub fn post(port: u16, path: &str, token: &str, content_type: &str, body: &str) -> u16 {
    let url = format!("http://127.0.0.1:{port}{path}");
    let output = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--data-binary", body, &url])
        .args(["-H", &format!("Authorization: Bearer {token}"), "-H", &format!("Content-Type: {content_type}")])
        .output()
        .expect("curl is installed by test.sh");
    String::from_utf8_lossy(&output.stdout).parse().unwrap_or(0)
}

/// The status, once the head is read.
fn read_head(stdout: &mut impl BufRead) -> u16 {
    let mut status = 0;
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap_or(0) > 0 {
        let text = line.trim_end();
        if text.is_empty() {
            break;
        }
        if status == 0 {
            status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        }
        line.clear();
    }
    status
}

fn read_events(stdout: impl BufRead, events: mpsc::Sender<Parsed>) {
    let mut block = String::new();
    for line in stdout.lines() {
        let Ok(line) = line else { return };
        block.push_str(&line);
        block.push('\n');
        if line.is_empty() {
            for event in gateway::front::sse::codec::parse(&block) {
                if events.send(event).is_err() {
                    return;
                }
            }
            block.clear();
        }
    }
}
