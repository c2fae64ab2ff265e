//! The MLS Delivery Service over XRPC: caller authentication, the XRPC framing, KeyPackages.

mod auth;
mod key_packages;
mod proxy;
mod xrpc;
