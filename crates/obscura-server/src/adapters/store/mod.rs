//! Database adapters of the store ports.

pub mod sqlite;
