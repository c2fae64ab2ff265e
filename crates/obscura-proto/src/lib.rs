//! Protobuf types of the Obscura v1 protocol, generated at build time from
//! `proto/obscura/v1/obscura.proto`. Generated code only: conversion to domain
//! types lives in the server's transport layer.

#![allow(clippy::all, reason = "generated code")]
#![allow(clippy::pedantic, reason = "generated code")]

/// `package obscura.v1`.
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/obscura.v1.rs"));
}
