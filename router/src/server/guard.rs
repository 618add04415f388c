//! Who may call the router's HTTP port from a browser: no one but its own
//! pages. A token guards a router reachable from outside; this guards one
//! without tokens (the loopback default) from the web pages its operator
//! opens, and the operator's page from cross-site forms.
//!
//! - **Host.** A DNS-rebinding page reaches a loopback router under its
//!   own name, so only the names the router answers to are taken: the
//!   loopback names and its bound address, unless `--http-allowed-hosts`
//!   says (a router with `--token` takes any, unless told).
//! - **Cross-site.** A call that changes anything (any method but GET and
//!   HEAD) from a page of another site is refused: `Sec-Fetch-Site` other
//!   than `same-origin` or `none`, or an `Origin` that is not the router's.
//! - **JSON only.** Such a call needs `Content-Type: application/json`,
//!   which no form and no "simple" `fetch` can send without a CORS
//!   preflight, which this port never grants.

use http::{header, HeaderMap, Method, StatusCode};

/// The names a router answers to: any, or a list (without ports, lowercase).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hosts {
    Any,
    Only(Vec<String>),
}

impl Hosts {
    /// What a router bound to `ip` takes unless told: the loopback names
    /// and that address (any, bound to every address).
    pub fn loopback_and(ip: std::net::IpAddr) -> Hosts {
        if ip.is_unspecified() {
            return Hosts::Any;
        }
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(str::to_owned).to_vec();
        names.push(ip.to_string());
        Hosts::Only(names)
    }

    /// `--http-allowed-hosts`, read: `*` is any.
    pub fn listed(names: &[String]) -> Hosts {
        match names.iter().any(|name| name == "*") {
            true => Hosts::Any,
            false => Hosts::Only(names.iter().map(|name| normalize(name)).collect()),
        }
    }

    fn allows(&self, host: Option<&str>) -> bool {
        match self {
            Hosts::Any => true,
            Hosts::Only(names) => host.is_some_and(|host| names.iter().any(|name| *name == normalize(host))),
        }
    }
}

/// A name as compared: lowercase, without a trailing dot or brackets.
fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase()
}

/// The name in a `Host` header, without its port.
fn host_name(host: &str) -> &str {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Why a request was refused: its status, code and message.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: &'static str,
}

/// Whether a request with `method` and `headers` may be served, by
/// whoever it comes from; the checks of the module's doc, in that order.
pub fn check(hosts: &Hosts, method: &Method, headers: &HeaderMap) -> Result<(), Refused> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !hosts.allows(host.map(host_name)) {
        return Err(Refused {
            status: StatusCode::MISDIRECTED_REQUEST,
            code: "host_not_allowed",
            message: "this router does not answer to that Host (--http-allowed-hosts)",
        });
    }
    if matches!(*method, Method::GET | Method::HEAD) {
        return Ok(());
    }
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    let same_origin = |origin: &[u8]| {
        let host = host.unwrap_or("").as_bytes();
        [&b"http://"[..], b"https://"].iter().any(|scheme| origin.strip_prefix(*scheme) == Some(host))
    };
    let cross_site = site.is_some_and(|site| site != b"same-origin" && site != b"none")
        || headers.get(header::ORIGIN).is_some_and(|origin| !same_origin(origin.as_bytes()));
    if cross_site {
        return Err(Refused {
            status: StatusCode::FORBIDDEN,
            code: "cross_site",
            message: "a call from a page of another site is refused",
        });
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|kind| kind.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Refused {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "not_json",
            message: "send Content-Type: application/json (curl --json)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(n, v)| (n.parse::<header::HeaderName>().unwrap(), v.parse().unwrap())).collect()
    }

    fn loopback() -> Hosts {
        Hosts::loopback_and("127.0.0.1".parse().unwrap())
    }

    const JSON: (&str, &str) = ("content-type", "application/json; charset=utf-8");

    #[test]
    fn only_the_routers_own_names_are_answered() {
        for host in ["127.0.0.1:9011", "localhost", "LOCALHOST.:80", "[::1]:9011"] {
            assert_eq!(check(&loopback(), &Method::GET, &headers(&[("host", host)])), Ok(()), "{host}");
        }
        for host in ["evil.example:9011", "127.0.0.1.evil.example", "10.0.0.1:9011"] {
            let refused = check(&loopback(), &Method::GET, &headers(&[("host", host)])).unwrap_err();
            assert_eq!(refused.code, "host_not_allowed", "{host}");
        }
        assert!(check(&loopback(), &Method::GET, &HeaderMap::new()).is_err(), "no Host at all");
        let any = Hosts::loopback_and("0.0.0.0".parse().unwrap());
        assert_eq!(check(&any, &Method::GET, &headers(&[("host", "router.internal")])), Ok(()));
        let listed = Hosts::listed(&["Router.Internal".into()]);
        assert_eq!(check(&listed, &Method::GET, &headers(&[("host", "router.internal:9011")])), Ok(()));
        assert!(check(&listed, &Method::GET, &headers(&[("host", "localhost")])).is_err());
        assert_eq!(Hosts::listed(&["*".into()]), Hosts::Any);
    }

    #[test]
    fn a_change_needs_json_from_the_routers_own_origin_or_no_browser() {
        let host = ("host", "127.0.0.1:9011");
        let post = |more: &[(&str, &str)]| check(&loopback(), &Method::POST, &headers(&[&[host], more].concat()));
        assert_eq!(post(&[JSON]), Ok(()), "curl --json");
        assert_eq!(post(&[JSON, ("origin", "http://127.0.0.1:9011"), ("sec-fetch-site", "same-origin")]), Ok(()));
        assert_eq!(post(&[JSON, ("sec-fetch-site", "none")]), Ok(()), "typed in the address bar");
        for (name, value) in [
            ("origin", "http://evil.example"),
            ("origin", "null"),
            ("origin", "http://127.0.0.1:9012"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
        ] {
            assert_eq!(post(&[JSON, (name, value)]).unwrap_err().code, "cross_site", "{name}: {value}");
        }
        for kind in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            assert_eq!(post(&[("content-type", kind)]).unwrap_err().code, "not_json", "{kind}");
        }
        assert_eq!(post(&[]).unwrap_err().code, "not_json");
        let form = headers(&[host, ("origin", "http://evil.example"), ("content-type", "text/plain")]);
        assert_eq!(check(&loopback(), &Method::GET, &form), Ok(()), "a read: the page cannot see the answer");
    }
}
