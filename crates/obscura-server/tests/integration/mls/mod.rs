//! The MLS Delivery Service over XRPC: caller authentication, the XRPC framing, KeyPackages,
//! conversations.

mod auth;
mod convos;
mod key_packages;
mod proxy;
mod xrpc;
