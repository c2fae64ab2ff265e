//! The MLS Delivery Service over XRPC: caller authentication, the XRPC framing, KeyPackages,
//! conversations.

mod auth;
mod blobs;
mod convos;
mod devices;
mod did_cache;
mod events;
mod framing;
mod key_packages;
mod members;
mod proxy;
mod xrpc;
