//! Below the routes: spoor's own accept loop (connection cap, header timeout) and WebSocket
//! upgrades with explicit limits. The client address behind trusted proxies is
//! [`crate::client_ip`], which the configuration names too.

pub mod meter;
pub mod server;
pub mod ws;
