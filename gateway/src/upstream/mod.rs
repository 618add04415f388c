//! Where events go: what a backend sees of them (`cgi`), the FastCGI
//! client (`fastcgi`) and the pools it calls by route (`routing`).

pub mod cgi;
pub mod fastcgi;
pub mod routing;
