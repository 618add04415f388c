//! The talk protocol: chat on binary frames, one protobuf `Talk` per
//! frame (docs/talk.proto). A talker's name is the `username` header of
//! its WebSocket upgrade, which the gateway passes as `HTTP_USERNAME`.

use protocol::cmd::Payload;
use protocol::SessionId;

use crate::chat::{escape, App, ChatError, MAX_TEXT_BYTES};
use crate::request::Event;

#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Talk {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub msg: String,
    #[prost(string, tag = "3")]
    pub name: String,
    #[prost(string, tag = "4")]
    pub cmd: String,
}

impl Talk {
    fn reply(cmd: &str, msg: String) -> Talk {
        Talk { cmd: cmd.into(), msg, ..Talk::default() }
    }

    fn error(code: u16, msg: impl Into<String>) -> Talk {
        Talk { code: code.into(), cmd: "error".into(), msg: msg.into(), name: String::new() }
    }
}

/// Connect registers a talker that came with a name; close forgets it.
pub async fn on_event(app: &App, session: SessionId, event: Event, username: Option<&str>) -> Result<(), ChatError> {
    match (event, username.map(str::trim).filter(|n| !n.is_empty())) {
        (Event::Connect, Some(name)) => app.talkers.set(session, &escape(name)).await?,
        (Event::Close, _) => drop(app.talkers.remove(session).await?),
        _ => {}
    }
    Ok(())
}

/// One binary message; returns the reply to send back, if any.
pub async fn handle(app: &App, session: SessionId, body: &[u8]) -> Talk {
    match apply(app, session, body).await {
        Ok(Some(reply)) => reply,
        Ok(None) => Talk::default(),
        Err(err) => Talk::error(err.code, err.message),
    }
}

async fn apply(app: &App, session: SessionId, body: &[u8]) -> Result<Option<Talk>, ChatError> {
    let talk =
        <Talk as prost::Message>::decode(body).map_err(|e| ChatError::new(400, format!("not a Talk message: {e}")))?;
    if talk.msg.len() > MAX_TEXT_BYTES {
        return Err(ChatError::new(413, format!("a message is at most {MAX_TEXT_BYTES} bytes")));
    }
    let name = app.talkers.get(session).await?.ok_or_else(|| ChatError::new(401, "connect with a username header"))?;
    match talk.cmd.as_str() {
        "talk" => {
            let said = Talk { cmd: "talk".into(), name, msg: escape(&talk.msg), code: 0 };
            app.router.broadcast(Payload::binary(prost::Message::encode_to_vec(&said))).await?;
            Ok(None)
        }
        "userlist" => {
            let names: Vec<String> = app.talkers.list().await?.into_iter().map(|u| u.name).collect();
            Ok(Some(Talk::reply("userlist", names.join(","))))
        }
        "ping" => Ok(Some(Talk::reply("pong", String::new()))),
        "exit" => {
            app.router.kick(vec![session]).await?;
            Ok(None)
        }
        other => Err(ChatError::new(404, format!("unknown cmd {other:?}"))),
    }
}
