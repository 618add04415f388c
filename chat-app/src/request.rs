//! Who sent a request and what it is, from FastCGI params.

use router::protocol::SessionId;

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

/// Finds the caller in the first source that names a session:
/// `SESSIONID`/`EVENT` (the gateway), `HTTP_SESSIONID`/`HTTP_EVENT` (a
/// gateway run with `--param-prefix HTTP_`), or the query string (curl
/// through nginx while debugging). `EVENT` always comes from the same
/// source as the session, so a client's query string cannot fake a close.
pub fn caller<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Result<Caller, String> {
    let query = param("QUERY_STRING").unwrap_or("");
    let from_query =
        |key: &str| query.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v);
    let (session, event) = if let Some(id) = param("SESSIONID") {
        (id, param("EVENT"))
    } else if let Some(id) = param("HTTP_SESSIONID") {
        (id, param("HTTP_EVENT"))
    } else if let Some(id) = from_query("SESSIONID") {
        (id, from_query("EVENT"))
    } else {
        return Err("no SESSIONID param".into());
    };
    let session = session.parse().map_err(|_| format!("SESSIONID {session:?} is not 16 lowercase hex characters"))?;
    let event = match event.unwrap_or("") {
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

    fn lookup<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    const ID: &str = "00000000000000aa";

    #[test]
    fn gateway_params_win_over_the_query_string() {
        let params = [("SESSIONID", ID), ("QUERY_STRING", "SESSIONID=00000000000000bb&EVENT=2")];
        let found = caller(lookup(&params)).unwrap();
        assert_eq!((found.session.as_str(), found.event), (ID, Event::Message));
    }

    #[test]
    fn prefixed_params_and_query_string_are_fallbacks() {
        let found = caller(lookup(&[("HTTP_SESSIONID", ID), ("HTTP_EVENT", "1")])).unwrap();
        assert_eq!(found.event, Event::Connect);
        let found = caller(lookup(&[("QUERY_STRING", "x=1&SESSIONID=00000000000000aa&EVENT=0")])).unwrap();
        assert_eq!((found.session.as_str(), found.event), (ID, Event::Message));
    }

    #[test]
    fn missing_or_bad_ids_and_events_are_errors() {
        assert!(caller(lookup(&[])).is_err());
        assert!(caller(lookup(&[("SESSIONID", "nope")])).is_err());
        assert!(caller(lookup(&[("SESSIONID", ID), ("EVENT", "9")])).is_err());
    }
}
