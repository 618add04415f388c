//! Who sent a request and what it is, from FastCGI params.

use protocol::SessionId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Connect,
    Message,
    Close,
    /// The client dropped; its session waits for a resume.
    Offline,
    /// The client resumed its session.
    Online,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub session: SessionId,
    pub event: Event,
}

/// Finds the caller in the params the gateway set: `SESSIONID`/`EVENT`,
/// or `HTTP_SESSIONID`/`HTTP_EVENT` from a gateway run with
/// `--param-prefix HTTP_` (the gateway drops client headers of those
/// names). Never from the query string or anything else a client writes:
/// to curl a backend, nginx/debug.conf turns the query into these params.
pub fn caller(param: impl Fn(&str) -> Option<String>) -> Result<Caller, String> {
    let (session, event) = if let Some(id) = param("SESSIONID") {
        (id, param("EVENT"))
    } else if let Some(id) = param("HTTP_SESSIONID") {
        (id, param("HTTP_EVENT"))
    } else {
        return Err("no SESSIONID param".into());
    };
    let session = session.parse().map_err(|_| format!("SESSIONID {session:?} is not 16 lowercase hex characters"))?;
    let event = match event.as_deref().unwrap_or("") {
        "" | "0" => Event::Message,
        "1" => Event::Connect,
        "2" => Event::Close,
        "3" => Event::Offline,
        "4" => Event::Online,
        other => return Err(format!("unknown EVENT {other:?}")),
    };
    Ok(Caller { session, event })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    }

    const ID: &str = "00000000000000aa";

    #[test]
    fn the_session_comes_from_the_gateways_params_never_the_query_string() {
        let params = [("SESSIONID", ID), ("QUERY_STRING", "SESSIONID=00000000000000bb&EVENT=2")];
        let found = caller(lookup(&params)).unwrap();
        assert_eq!((found.session.as_str(), found.event), (ID, Event::Message));
        assert!(caller(lookup(&[("QUERY_STRING", "SESSIONID=00000000000000aa&EVENT=0")])).is_err());
        let found = caller(lookup(&[("HTTP_SESSIONID", ID), ("HTTP_EVENT", "1")])).unwrap();
        assert_eq!(found.event, Event::Connect);
    }

    #[test]
    fn missing_or_bad_ids_and_events_are_errors() {
        assert!(caller(lookup(&[])).is_err());
        assert!(caller(lookup(&[("SESSIONID", "nope")])).is_err());
        assert!(caller(lookup(&[("SESSIONID", ID), ("EVENT", "9")])).is_err());
    }
}
