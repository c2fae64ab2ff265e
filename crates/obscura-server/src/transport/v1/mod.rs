//! The Obscura v1 REST API, one module per resource.

pub mod attachments;
pub mod docs;
pub mod dto;
pub mod keys;
pub mod messages;
pub mod push_tokens;
pub mod sessions;
pub mod users;
