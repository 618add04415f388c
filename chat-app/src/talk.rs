//! The talk protocol: chat on binary frames, one protobuf `Talk` per
//! frame (docs/talk.proto). A talker's name is the `username` header of
//! its WebSocket upgrade, which the gateway passes as `HTTP_USERNAME`.

use protocol::cmd::Payload;
use protocol::SessionId;

use crate::app::{App, AppError};
use crate::cgi::Response;
use crate::request::Event;
use crate::text::{escape, MAX_TEXT_BYTES};

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
pub async fn on_event(app: &App, session: SessionId, event: Event, username: Option<&str>) -> Result<(), AppError> {
    match (event, username.map(str::trim).filter(|n| !n.is_empty())) {
        (Event::Connect, Some(name)) => app.talkers.set(session, &escape(name)).await?,
        (Event::Close, _) => drop(app.talkers.remove(session).await?),
        _ => {}
    }
    Ok(())
}

/// One binary message; the reply, a Talk message as a binary frame (none
/// for nothing to say).
pub async fn handle(app: &App, session: SessionId, body: &[u8]) -> Response {
    let reply = match apply(app, session, body).await {
        Ok(reply) => reply,
        Err(err) => Some(Talk::error(err.code, err.message)),
    };
    match reply {
        Some(talk) => Response::binary(prost::Message::encode_to_vec(&talk)),
        None => Response::none(),
    }
}

async fn apply(app: &App, session: SessionId, body: &[u8]) -> Result<Option<Talk>, AppError> {
    let talk =
        <Talk as prost::Message>::decode(body).map_err(|e| AppError::new(400, format!("not a Talk message: {e}")))?;
    if talk.msg.len() > MAX_TEXT_BYTES {
        return Err(AppError::new(413, format!("a message is at most {MAX_TEXT_BYTES} bytes")));
    }
    let name = app.talkers.get(session).await?.ok_or_else(|| AppError::new(401, "connect with a username header"))?;
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
        other => Err(AppError::new(404, format!("unknown cmd {other:?}"))),
    }
}
