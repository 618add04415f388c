//! Where events go: the FastCGI client (`fastcgi`) and the pools it calls
//! by route (`routing`).

pub mod fastcgi;
pub mod routing;
